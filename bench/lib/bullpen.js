// bullpen's processes as a user runs them (apps/*/dist/main.js with their environment), for one
// key prefix and one lanes file: start the API, the exporter and a worker, and talk to them.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { httpClient, jsonPost } = require('./load');
const { until } = require('./wait');

const ROOT = path.resolve(__dirname, '../..');
const MAIN = {
  api: path.join(ROOT, 'apps/api/dist/main.js'),
  worker: path.join(ROOT, 'apps/worker/dist/main.js'),
  exporter: path.join(ROOT, 'apps/exporter/dist/main.js'),
};
const START_TIMEOUT_MS = 30_000;
/** The one lane every measurement uses. */
const LANE = 'bench';
const BULK_MAX = 1000;
/** 503s tolerated in one bulk enqueue (each followed by a check of what landed). */
const MAX_UNAVAILABLE = 5;
const SETTLE_MS = 1500;
/** Variables a child inherits from the bench's environment; everything bullpen reads is set here. */
const INHERITED = ['PATH', 'HOME', 'TMPDIR', 'LANG', 'TZ'];
const OTEL = /^OTEL_/;

/** `count()` once it has stopped changing for SETTLE_MS (a MULTI still queued in Redis lands). */
async function settled(count) {
  let last = await count();
  let since = Date.now();
  return until(async () => {
    const now = await count();
    if (now !== last) {
      last = now;
      since = Date.now();
      return undefined;
    }
    return Date.now() - since >= SETTLE_MS ? { value: now } : undefined;
  }, 'the lane count to settle after a 503', 30_000, 100).then((r) => r.value);
}

function assertBuilt() {
  for (const file of Object.values(MAIN)) {
    if (!fs.existsSync(file)) throw new Error(`${file} is missing: build first (npm run build), or run npm run bench`);
  }
}

/**
 * Writes the lanes file: one lane of `concurrency` handlers, room for `maxQueueSize` jobs, and a
 * process-wide cap that does not bind below the lane's.
 */
function writeLanesFile(dir, { concurrency, maxQueueSize }) {
  // Like the bare side's removeOnComplete: true, the lane keeps no completed jobs (count 0 makes
  // BullMQ delete a job as it completes); the default lanes keep 1,000 for an hour, which costs
  // Redis about twice as much per completion and is a retention choice, not bullpen's overhead.
  const retention = { completed: { ageSeconds: 3600, count: 0 } };
  return writeLanes(dir, `lanes-${concurrency}-${maxQueueSize}.json`, {
    maxHandlersPerProcess: Math.max(64, concurrency),
    lanes: { [LANE]: { concurrency, maxQueueSize, retention } },
  });
}

/** Writes a lanes file of any shape (as LANES_FILE reads it) under `dir`; returns its path. */
function writeLanes(dir, name, lanesFile) {
  const file = path.join(dir, name);
  fs.writeFileSync(file, JSON.stringify(lanesFile, null, 2));
  return file;
}

/**
 * Tracing per child: 'inherit' passes the bench's own OTEL_* variables through ("as configured":
 * off unless an endpoint is set), 'off' drops them, { endpoint } turns tracing on at 100% sampling.
 */
function tracingEnv(tracing, env = process.env) {
  if (tracing === 'off') return { OTEL_SDK_DISABLED: 'true' };
  if (tracing === 'inherit') return Object.fromEntries(Object.entries(env).filter(([k]) => OTEL.test(k)));
  return { OTEL_EXPORTER_OTLP_ENDPOINT: tracing.endpoint, OTEL_TRACES_SAMPLER_ARG: '1' };
}

class BullpenStack {
  /**
   * @param {object} o
   * @param {import('./children').Children} o.children
   * @param {string} o.redisUrl
   * @param {string} o.prefix    BULLPEN_PREFIX of every process of this stack
   * @param {string} o.lanesFile
   * @param {string} o.apiKey    the one key of tenant "bench"
   * @param {'inherit'|'off'|{endpoint:string}} [o.tracing]  default 'inherit'
   * @param {string} [o.handlersDir]  HANDLERS_DIR of the worker
   * @param {string} [o.profileDir]   write --cpu-prof profiles of the API, exporter and worker here
   * @param {string} [o.label]        names the profiles
   * @param {Record<string, string>} [o.env]  further variables for every process (EVENTS_MAX_LEN, ...)
   */
  constructor(o) {
    this.o = { tracing: 'inherit', ...o };
    this.processes = [];
    /** Every worker started, in order; `worker` is the last of them. */
    this.workers = [];
  }

  /** The BullMQ prefix of the bench lane's queue (bullpen gives each lane its own hash tag). */
  get queuePrefix() {
    return require('@bullpen/core').lanePrefix(this.o.prefix, LANE);
  }

  /**
   * A stack on the bench run's shared Redis, lanes file, key and process list, under `prefix`.
   * @param {{children: any, redisUrl: string, lanesFile: string, apiKey: string}} ctx
   * @param {{prefix: string, label: string} & Partial<ConstructorParameters<typeof BullpenStack>[0]>} o
   */
  static forRun(ctx, o) {
    return new BullpenStack({ children: ctx.children, redisUrl: ctx.redisUrl, lanesFile: ctx.lanesFile, apiKey: ctx.apiKey, ...o });
  }

  env(extra) {
    const inherited = Object.fromEntries(INHERITED.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]]));
    return {
      ...inherited,
      REDIS_URL: this.o.redisUrl,
      BULLPEN_PREFIX: this.o.prefix,
      LANES_FILE: this.o.lanesFile,
      LOG_LEVEL: 'info',
      HOST: '127.0.0.1',
      API_KEYS: `bench:${this.o.apiKey}`,
      ...tracingEnv(this.o.tracing),
      ...this.o.env,
      ...extra,
    };
  }

  nodeArgs(role) {
    if (!this.o.profileDir) return [];
    return ['--cpu-prof', `--cpu-prof-dir=${this.o.profileDir}`, `--cpu-prof-name=${this.o.label ?? 'bench'}-${role}-${Date.now()}.cpuprofile`];
  }

  spawn(role, extraEnv) {
    const child = this.o.children.spawn(`bullpen ${role}`, process.execPath, [...this.nodeArgs(role), MAIN[role]], {
      cwd: ROOT,
      env: this.env(extraEnv),
    });
    this.processes.push(child);
    return child;
  }

  /** Starts the API on a free port; resolves once it has logged that it listens. */
  async startApi() {
    const child = this.spawn('api', { PORT: '0' });
    const match = await child.waitForLine(/"msg":"api listening"/, 'the API to listen', START_TIMEOUT_MS);
    const { url } = JSON.parse(match.input);
    this.api = { child, url, client: httpClient(url, { maxSockets: 64 }) };
    await until(() => this.api.client.request('GET', '/readyz').then((r) => r.status === 200, () => false), 'the API to be ready', START_TIMEOUT_MS);
    return this.api;
  }

  /** Starts the exporter on a free port; resolves once /healthz answers. */
  async startExporter() {
    const child = this.spawn('exporter', { EXPORTER_PORT: '0' });
    const match = await child.waitForLine(/"msg":"exporter listening"/, 'the exporter to listen', START_TIMEOUT_MS);
    const { port } = JSON.parse(match.input);
    const url = `http://127.0.0.1:${port}`;
    this.exporter = { child, url, client: httpClient(url, { maxSockets: 2 }) };
    await until(() => this.exporter.client.request('GET', '/healthz').then((r) => r.status === 200, () => false), 'the exporter to be healthy', START_TIMEOUT_MS);
    return this.exporter;
  }

  /** Starts a worker with its metrics port on; resolves once it has logged "worker started". */
  async startWorker() {
    // Port 0: the worker binds a free port and logs it (a port found free here could be taken by
    // another process before the worker binds it).
    const env = { WORKER_METRICS_PORT: '0', ...(this.o.handlersDir ? { HANDLERS_DIR: this.o.handlersDir } : {}) };
    const child = this.spawn('worker', env);
    const listening = await child.waitForLine(/"msg":"metrics listening"/, 'the worker to serve its metrics', START_TIMEOUT_MS);
    const metricsPort = JSON.parse(listening.input).port;
    await child.waitForLine(/"msg":"worker started"/, 'the worker to start', START_TIMEOUT_MS);
    this.worker = { child, metricsUrl: `http://127.0.0.1:${metricsPort}` };
    this.workers.push(this.worker);
    return this.worker;
  }

  /** Whether the worker serves /metrics on WORKER_METRICS_PORT (metrics on, as the bench asks). */
  async workerMetricsServed() {
    if (!this.worker) return false;
    const client = httpClient(this.worker.metricsUrl, { maxSockets: 1, timeoutMs: 2000 });
    try {
      const res = await client.request('GET', '/metrics');
      return res.status === 200 && /bullpen_worker_/.test(res.body);
    } catch {
      return false;
    } finally {
      client.close();
    }
  }

  /** The exporter's sum of a counter over the bench lane (0 when absent). */
  async exporterCounter(name) {
    return (await this.exporterTotals([name]))[name][LANE] ?? 0;
  }

  /**
   * One scrape of the exporter: for each metric name, its samples summed by lane over every other
   * label ({ name: { lane: total } }; a lane without samples is absent).
   */
  async exporterTotals(names) {
    const res = await this.exporter.client.request('GET', '/metrics');
    if (res.status !== 200) throw new Error(`exporter /metrics answered ${res.status}`);
    const totals = Object.fromEntries(names.map((name) => [name, {}]));
    for (const m of res.body.matchAll(/^([a-z0-9_]+)\{([^}]*)\} (\S+)$/gm)) {
      const byLane = totals[m[1]];
      const lane = /(?:^|,)lane="([^"]*)"/.exec(m[2])?.[1];
      if (!byLane || lane === undefined) continue;
      byLane[lane] = (byLane[lane] ?? 0) + Number(m[3]);
    }
    return totals;
  }

  /**
   * Enqueues n jobs in bulk requests of up to 1000, one request at a time. `backlog()` counts the
   * lane's jobs (nothing else writes to it meanwhile): after a 503 it tells whether the batch
   * landed anyway (the API's Redis call timed out while the MULTI went on) or must be sent again.
   * Resolves with the 503s seen and how many of those batches had landed.
   */
  async enqueueBulk(n, job, backlog) {
    const full = this.bulkRequest(job, Math.min(n, BULK_MAX));
    const outcome = { unavailable: 0, landedDespite503: 0 };
    let sent = 0;
    while (sent < n) {
      const size = Math.min(BULK_MAX, n - sent);
      const res = await this.api.client.request('POST', `/v1/lanes/${LANE}/jobs/bulk`, size === full.size ? full : this.bulkRequest(job, size));
      if (res.status === 200) {
        const body = JSON.parse(res.body);
        if (body.created !== size) throw new Error(`bulk enqueue created ${body.created} of ${size}: ${res.body.slice(0, 300)}`);
        sent += size;
        continue;
      }
      if (res.status !== 503 || outcome.unavailable >= MAX_UNAVAILABLE) {
        throw new Error(`bulk enqueue answered ${res.status}: ${res.body.slice(0, 300)}`);
      }
      outcome.unavailable += 1;
      const count = await settled(backlog);
      if (count === sent + size) {
        outcome.landedDespite503 += 1;
        sent += size;
      } else if (count !== sent) {
        throw new Error(`after a 503 the lane holds ${count} jobs; expected ${sent} (not added) or ${sent + size} (added)`);
      }
    }
    return outcome;
  }

  /**
   * One bulk request of `jobs` to `lane`: { status, body } with the body parsed when it is JSON
   * (the per-item results on 200).
   */
  async submitBulk(lane, jobs) {
    const res = await this.api.client.request('POST', `/v1/lanes/${lane}/jobs/bulk`, jsonPost({ jobs }, this.authHeader()));
    let body;
    try {
      body = JSON.parse(res.body);
    } catch {
      body = res.body;
    }
    return { status: res.status, body };
  }

  bulkRequest(job, size) {
    return { ...jsonPost({ jobs: Array.from({ length: size }, () => job) }, this.authHeader()), size };
  }

  authHeader() {
    return { authorization: `Bearer ${this.o.apiKey}` };
  }

  /** Stops this stack's processes (SIGTERM, so profiles and traces are flushed) and closes clients. */
  async stop() {
    for (const p of [this.api, this.exporter]) p?.client.close();
    await Promise.all(this.processes.map((child) => child.stop(15_000)));
  }
}

module.exports = { BullpenStack, LANE, BULK_MAX, ROOT, assertBuilt, writeLanes, writeLanesFile };
