// The metrics pipeline proven end to end against a real Redis and a real Prometheus: a scripted
// workload (successes, retries, permanent failures, timeouts, exhausted retries, a stall, budget
// exhaustion, admission rejections) run by plain BullMQ workers that publish bullpen's events the
// way bullpen's worker does (core recordAttempt / publishLaneEvent); the exporter is SIGKILLed
// mid-run and restarted; its totals must equal the ground truth exactly, Prometheus must see no
// counter reset, and every dashboard query and rule must evaluate.
//
// apps/api and apps/worker are written concurrently; until they are wired in here, two small
// servers in this test register the API and worker catalogue entries (createMetrics, as the
// apps will) so that every panel and rule can be evaluated against a live scrape.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { isDeepStrictEqual } from 'node:util';
import { UnrecoverableError, Worker, type Job, type Queue } from 'bullmq';
import IORedis from 'ioredis';
import { Registry } from 'prom-client';
import {
  catalogueNameOf,
  createLaneQueue,
  createMetrics,
  createRedis,
  LANE_EVENT,
  laneEventsKey,
  metricsOf,
  publishLaneEvent,
  recordAttempt,
  unwrapJobData,
  wrapJobData,
  type BullpenConfig,
  type ErrorClass,
  type MetricSet,
} from '@bullpen/core';
import { cleanupPrefix, testConfig } from './support/config';
import {
  declaredMetrics,
  namesIn,
  promtool,
  REPO_ROOT,
  spawnExporter,
  startPrometheus,
  total,
  type ExporterProcess,
  type PrometheusProcess,
  type Sample,
} from './support/prometheus';
import { freePort } from './support/redis-server';
import { redisUrl, testPrefix, waitUntil } from './support/wait';

jest.setTimeout(240_000);

type Kind = 'ok' | 'slow' | 'permanent' | 'flaky' | 'exhaust' | 'timeout';
const LANES = { alpha: { concurrency: 8, attempts: 3 }, beta: { concurrency: 4, attempts: 2 } } as const;
type Lane = keyof typeof LANES;
/** Jobs per phase, per lane and kind. */
const PLAN: Record<Lane, Record<Kind, number>> = {
  alpha: { ok: 60, slow: 10, permanent: 8, flaky: 12, exhaust: 5, timeout: 5 },
  beta: { ok: 40, slow: 4, permanent: 4, flaky: 6, exhaust: 4, timeout: 2 },
};
const PHASES = 2;
const BACKOFF_MS = 25;
const TENANTS = ['acme', 'globex']; // acme is configured (API_KEYS), globex folds into `other`
const FAILURE: Partial<Record<Kind, { errorClass: ErrorClass; retryable: boolean }>> = {
  permanent: { errorClass: 'validation', retryable: false },
  flaky: { errorClass: 'network', retryable: true },
  exhaust: { errorClass: 'http_5xx', retryable: true },
  timeout: { errorClass: 'timeout', retryable: true },
};

interface Truth {
  enqueued: number;
  completed: number;
  failed: Partial<Record<ErrorClass, number>>;
  attemptsFailed: Partial<Record<ErrorClass, number>>;
  retried: Partial<Record<ErrorClass, number>>;
  attempts: number;
  attemptsByTenant: Record<string, number>;
  stalled: number;
  budget: { defer: number; fail: number };
  rejected: number;
}

function emptyTruth(): Truth {
  return {
    enqueued: 0,
    completed: 0,
    failed: {},
    attemptsFailed: {},
    retried: {},
    attempts: 0,
    attemptsByTenant: { acme: 0, other: 0 },
    stalled: 0,
    budget: { defer: 0, fail: 0 },
    rejected: 0,
  };
}
const add = (map: Partial<Record<ErrorClass, number>>, key: ErrorClass, n: number) => (map[key] = (map[key] ?? 0) + n);

/** What one planned job contributes to the ground truth, from its kind and the lane's attempts. */
function account(truth: Truth, lane: Lane, kind: Kind, tenant: string): void {
  const attempts = LANES[lane].attempts;
  const failure = FAILURE[kind];
  let made = 1;
  truth.enqueued += 1;
  if (!failure) truth.completed += 1;
  else if (!failure.retryable) {
    add(truth.failed, failure.errorClass, 1);
    add(truth.attemptsFailed, failure.errorClass, 1);
  } else if (kind === 'flaky') {
    made = 2;
    truth.completed += 1;
    add(truth.attemptsFailed, failure.errorClass, 1);
    add(truth.retried, failure.errorClass, 1);
  } else {
    made = attempts;
    add(truth.failed, failure.errorClass, 1);
    add(truth.attemptsFailed, failure.errorClass, attempts);
    add(truth.retried, failure.errorClass, attempts - 1);
  }
  truth.attempts += made;
  const label = tenant === 'acme' ? 'acme' : 'other';
  truth.attemptsByTenant[label] = (truth.attemptsByTenant[label] ?? 0) + made;
}

/** The exporter's totals for a lane, in the shape of the ground truth. */
function exported(samples: readonly Sample[], lane: Lane): Truth {
  const byClass = (name: string) => {
    const out: Partial<Record<ErrorClass, number>> = {};
    for (const s of samples) {
      if (s.name === name && s.labels.lane === lane && s.value !== 0) out[s.labels.error_class as ErrorClass] = s.value;
    }
    return out;
  };
  return {
    enqueued: total(samples, 'bullpen_jobs_enqueued_total', { lane }),
    completed: total(samples, 'bullpen_jobs_completed_total', { lane }),
    failed: byClass('bullpen_jobs_failed_total'),
    attemptsFailed: byClass('bullpen_job_attempts_failed_total'),
    retried: byClass('bullpen_jobs_retried_total'),
    attempts: total(samples, 'bullpen_job_attempts_total', { lane }),
    attemptsByTenant: {
      acme: total(samples, 'bullpen_job_attempts_total', { lane, tenant: 'acme' }),
      other: total(samples, 'bullpen_job_attempts_total', { lane, tenant: 'other' }),
    },
    stalled: total(samples, 'bullpen_jobs_stalled_total', { lane }),
    budget: {
      defer: total(samples, 'bullpen_retry_budget_exhausted_total', { lane, action: 'defer' }),
      fail: total(samples, 'bullpen_retry_budget_exhausted_total', { lane, action: 'fail' }),
    },
    rejected: total(samples, 'bullpen_jobs_rejected_total', { lane }),
  };
}

/** Serves a registry on a free loopback port, recording its own requests when it is the API's. */
function serve(set: MetricSet, api: boolean): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    const started = process.hrtime.bigint();
    set.registry.metrics().then((body) => {
      res.writeHead(200, { 'content-type': set.registry.contentType }).end(body);
      if (api) {
        const labels = { route: '/metrics', method: req.method ?? 'GET', status: '200' };
        set.counter('bullpen_api_requests_total').inc(labels);
        set.histogram('bullpen_api_request_duration_seconds').observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

describe('the metrics pipeline against a real Prometheus', () => {
  const prefix = testPrefix('mp');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-pipeline-'));
  const lanesFile = path.join(dir, 'lanes.json');
  writeFileSync(lanesFile, JSON.stringify({ lanes: LANES }));
  const env = { REDIS_URL: redisUrl(), BULLPEN_PREFIX: prefix, LANES_FILE: lanesFile, API_KEYS: 'acme:acme-key-0001' };
  let config: BullpenConfig;
  let redis: IORedis;
  let exporterPort: number;
  let exporter: ExporterProcess;
  let prometheus: PrometheusProcess;
  const servers: http.Server[] = [];
  const connections: IORedis[] = [];
  const connection = () => {
    const c = createRedis(redisUrl(), 'worker');
    connections.push(c);
    return c;
  };
  const queues: Partial<Record<Lane, Queue>> = {};
  const workers: Worker[] = [];
  const truth: Record<Lane, Truth> = { alpha: emptyTruth(), beta: emptyTruth() };
  const active: Record<Lane, number> = { alpha: 0, beta: 0 };
  const loopDelay = monitorEventLoopDelay();
  let apiSet: MetricSet;
  let killedWithUnread = 0;

  beforeAll(async () => {
    config = testConfig({ env });
    redis = new IORedis(redisUrl(), { maxRetriesPerRequest: 3 });
    exporterPort = await freePort();
    exporter = await spawnExporter(env, exporterPort);

    loopDelay.enable();
    apiSet = createMetrics(new Registry(), metricsOf('api'));
    const workerSet = createMetrics(new Registry(), metricsOf('worker'), {
      collectors: {
        bullpen_worker_active_handlers: (g) => Object.entries(active).forEach(([lane, n]) => g.set({ lane }, n)),
        bullpen_worker_resident_memory_bytes: (g) => g.set(process.memoryUsage().rss),
        bullpen_worker_heap_used_bytes: (g) => g.set(process.memoryUsage().heapUsed),
        bullpen_worker_event_loop_lag_seconds: (g) => g.set(loopDelay.mean / 1e9),
      },
    });
    for (const lane of Object.keys(LANES)) {
      workerSet.gauge('bullpen_worker_concurrency_slots').set({ lane }, LANES[lane as Lane].concurrency);
      workerSet.counter('bullpen_worker_abort_ignored_total').inc({ lane }, 0);
      apiSet.counter('bullpen_api_admission_rejected_total').inc({ lane, reason: 'queue_full' }, 0);
    }
    workerSet.gauge('bullpen_worker_max_handlers').set(config.maxHandlersPerProcess);
    workerSet.gauge('bullpen_worker_memory_guard_active').set(0);
    const [apiServer, workerServer] = await Promise.all([serve(apiSet, true), serve(workerSet, false)]);
    servers.push(apiServer as http.Server, workerServer as http.Server);
    const port = (s: http.Server) => (s.address() as AddressInfo).port;

    prometheus = await startPrometheus({
      jobs: [
        { job: 'bullpen-exporter', targets: [`127.0.0.1:${exporterPort}`] },
        { job: 'bullpen-api', targets: [`127.0.0.1:${port(apiServer as http.Server)}`] },
        { job: 'bullpen-worker', targets: [`127.0.0.1:${port(workerServer as http.Server)}`] },
      ],
    });
  });

  afterAll(async () => {
    loopDelay.disable();
    await Promise.all(workers.map((w) => w.close(true)));
    await Promise.all(Object.values(queues).map((q) => q.close()));
    for (const c of connections) c.disconnect();
    await exporter?.kill('SIGKILL');
    await prometheus?.stop();
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    await cleanupPrefix(prefix);
    redis?.disconnect();
    rmSync(dir, { recursive: true, force: true });
  });

  const processor = (lane: Lane) => async (job: Job) => {
    const { data, meta } = unwrapJobData(job.data) as { data: { kind: Kind }; meta: { tenant: string } | undefined };
    const attempt = job.attemptsMade + 1;
    const started = Date.now();
    active[lane] += 1;
    try {
      if (data.kind === 'slow') await new Promise((r) => setTimeout(r, 40)); // the job's work, not a test wait
      const failure = data.kind === 'flaky' && attempt > 1 ? undefined : FAILURE[data.kind];
      const willRetry = !!failure?.retryable && attempt < LANES[lane].attempts;
      await recordAttempt(redis, {
        prefix,
        lane,
        maxLen: config.eventsMaxLen,
        message: failure ? `${data.kind} failure` : undefined,
        attempt: {
          jobId: job.id as string,
          name: job.name,
          tenant: meta?.tenant ?? '',
          attempt,
          outcome: failure ? 'failed' : 'completed',
          ...(failure ? { errorClass: failure.errorClass } : {}),
          willRetry,
          runMs: Date.now() - started,
          waitMs: Math.max(0, started - job.timestamp),
          ...(willRetry ? { delayMs: BACKOFF_MS } : {}),
          worker: 'pipeline-test',
        },
      });
      if (!failure) return 'ok';
      if (!failure.retryable) throw new UnrecoverableError(`${data.kind} failure`);
      throw new Error(`${data.kind} failure`);
    } finally {
      active[lane] -= 1;
    }
  };

  const addPhase = async (): Promise<void> => {
    for (const lane of Object.keys(PLAN) as Lane[]) {
      const jobs: Array<{ name: string; data: unknown }> = [];
      let i = 0;
      for (const [kind, count] of Object.entries(PLAN[lane]) as Array<[Kind, number]>) {
        for (let n = 0; n < count; n += 1, i += 1) {
          const tenant = TENANTS[i % 2] as string;
          account(truth[lane], lane, kind, tenant);
          jobs.push({ name: kind === 'slow' ? 'sleep' : 'noop', data: wrapJobData({ kind }, { v: 1, tenant }) });
        }
      }
      await (queues[lane] as Queue).addBulk(jobs);
    }
  };

  const finished = async (lane: Lane) => {
    const counts = await (queues[lane] as Queue).getJobCounts('completed', 'failed');
    const t = truth[lane];
    const failed = Object.values(t.failed).reduce((a, b) => a + b, 0);
    return counts.completed === t.completed && counts.failed === failed;
  };

  const liveScrapes = async (): Promise<string[]> => [
    await exporter.scrape(),
    ...(await Promise.all(
      servers.map(async (s) => (await fetch(`http://127.0.0.1:${(s.address() as AddressInfo).port}/metrics`)).text()),
    )),
  ];

  const matchesTruth = async () => {
    const samples = await exporter.samples();
    return (Object.keys(LANES) as Lane[]).every((lane) => isDeepStrictEqual(exported(samples, lane), truth[lane]));
  };

  it('exports totals equal to the ground truth, after a SIGKILL of the exporter mid-run and a restart', async () => {
    // Prometheus holds the zeros before the first event, so every counter's rise is a rate.
    await waitUntil(async () => (await prometheus.vector('bullpen_jobs_completed_total')).length === 2, {
      what: 'Prometheus to scrape the exporter before the workload',
    });
    for (const lane of Object.keys(LANES) as Lane[]) queues[lane] = createLaneQueue(config, lane, connection());
    const alpha = queues.alpha as Queue;

    // A stall: a job taken by a "worker" that dies holding it, reclaimed once its lock expires.
    await alpha.add('noop', wrapJobData({ kind: 'ok' }, { v: 1, tenant: 'acme' }));
    account(truth.alpha, 'alpha', 'ok', 'acme');
    truth.alpha.stalled += 1;
    const dying = new Worker('alpha', null, { connection: connection(), prefix, lockDuration: 1000, autorun: false });
    expect(await dying.getNextJob('dying-token')).toBeDefined();
    await dying.close(true);

    for (const lane of Object.keys(LANES) as Lane[]) {
      const worker = new Worker(lane, processor(lane), {
        connection: connection(),
        prefix,
        concurrency: LANES[lane].concurrency,
        stalledInterval: 300,
        maxStalledCount: 1,
        settings: { backoffStrategy: () => BACKOFF_MS },
      });
      worker.on('error', () => undefined);
      workers.push(worker);
    }

    await addPhase();
    await waitUntil(async () => (await finished('alpha')) && (await finished('beta')), { timeoutMs: 60_000, what: 'phase 1 jobs to finish' });
    await waitUntil(matchesTruth, { timeoutMs: 30_000, what: 'exported totals to match phase 1' });

    // Phase 2, with the exporter SIGKILLed as soon as it has counted part of it.
    const before = total(await exporter.samples(), 'bullpen_exporter_events_processed_total');
    await addPhase();
    await waitUntil(async () => total(await exporter.samples(), 'bullpen_exporter_events_processed_total') > before, {
      intervalMs: 5,
      what: 'the exporter to count part of phase 2',
    });
    await exporter.kill('SIGKILL');

    // While it is dead: the retry budget refuses retries and the API rejects submissions.
    for (const action of ['defer', 'defer', 'defer', 'fail'] as const) {
      await publishLaneEvent(redis, prefix, 'alpha', { event: LANE_EVENT.retryBudgetExhausted, jobId: 'x', action }, config.eventsMaxLen);
      truth.alpha.budget[action] += 1;
    }
    for (const count of [5, 7]) {
      await publishLaneEvent(redis, prefix, 'beta', { event: LANE_EVENT.rejected, count, reason: 'queue_full' }, config.eventsMaxLen);
      apiSet.counter('bullpen_api_admission_rejected_total').inc({ lane: 'beta', reason: 'queue_full' }, count);
      truth.beta.rejected += count;
    }
    await waitUntil(async () => (await finished('alpha')) && (await finished('beta')), { timeoutMs: 60_000, what: 'phase 2 jobs to finish' });
    for (const lane of Object.keys(LANES) as Lane[]) {
      const read = Number(await redis.hget(`${prefix}:${lane}:bp:exporter`, 'read'));
      const info = (await redis.xinfo('STREAM', laneEventsKey(prefix, lane))) as unknown[];
      killedWithUnread += Number(info[info.indexOf('entries-added') + 1]) - read;
    }
    expect(killedWithUnread).toBeGreaterThan(0);
    // Restart only once Prometheus has seen the exporter down, so its series span the gap.
    await waitUntil(async () => (await prometheus.vector('up{job="bullpen-exporter"} == 0')).length === 1, {
      what: 'Prometheus to see the exporter down',
    });

    exporter = await spawnExporter(env, exporterPort);
    await waitUntil(matchesTruth, { timeoutMs: 30_000, what: 'exported totals to match the ground truth after the restart' });
    const samples = await exporter.samples();
    for (const lane of Object.keys(LANES) as Lane[]) {
      expect(exported(samples, lane)).toEqual(truth[lane]);
      // Every stream entry counted once, none lost, and BullMQ agrees on what finished.
      const info = (await redis.xinfo('STREAM', laneEventsKey(prefix, lane))) as unknown[];
      expect(total(samples, 'bullpen_exporter_events_processed_total', { lane })).toBe(Number(info[info.indexOf('entries-added') + 1]));
      expect(total(samples, 'bullpen_exporter_events_lost_total', { lane })).toBe(0);
      expect(total(samples, 'bullpen_jobs_dead_lettered_total', { lane })).toBe(total(samples, 'bullpen_jobs_failed_total', { lane }));
      const counts = await (queues[lane] as Queue).getJobCounts('completed', 'failed');
      expect(counts.completed).toBe(truth[lane].completed);
      // Histograms: one run and one wait observation per attempt, one backoff per retry.
      const count = (name: string) => total(samples, `${name}_count`, { lane });
      expect(count('bullpen_job_run_duration_seconds')).toBe(truth[lane].attempts);
      expect(count('bullpen_job_wait_duration_seconds')).toBe(truth[lane].attempts);
      expect(count('bullpen_job_backoff_delay_seconds')).toBe(Object.values(truth[lane].retried).reduce((a, b) => a + b, 0));
      expect(total(samples, 'bullpen_job_backoff_delay_seconds_sum', { lane })).toBeCloseTo(
        (count('bullpen_job_backoff_delay_seconds') * BACKOFF_MS) / 1000,
        6,
      );
    }
    expect(total(samples, 'bullpen_job_run_duration_seconds_count', { lane: 'alpha', job_name: 'sleep' })).toBe(PLAN.alpha.slow * PHASES);
  });

  it('shows Prometheus the same totals, with no counter reset across the restart', async () => {
    const completed = truth.alpha.completed + truth.beta.completed;
    await waitUntil(async () => (await prometheus.vector('sum(bullpen_jobs_completed_total)'))[0]?.value === completed, {
      what: 'Prometheus to scrape the final totals',
    });
    for (const name of ['bullpen_jobs_enqueued_total', 'bullpen_jobs_completed_total', 'bullpen_exporter_events_processed_total']) {
      const resets = await prometheus.vector(`sum(resets(${name}[10m]))`);
      expect(`${name} resets: ${resets[0]?.value}`).toBe(`${name} resets: 0`);
    }
    const down = await prometheus.vector('min_over_time(up{job="bullpen-exporter"}[10m])');
    expect(down[0]?.value).toBe(0); // Prometheus did see the exporter die
  });

  it('evaluates every rule without error in Prometheus, and every rule expression through the HTTP API', async () => {
    interface ApiRule {
      name: string;
      query: string;
      health: string;
      lastError?: string;
    }
    const rules = await waitUntil(
      async () => {
        const body = await prometheus.api<{ data: { groups: Array<{ rules: ApiRule[] }> } }>('/api/v1/rules');
        const all = body.data.groups.flatMap((g) => g.rules);
        return all.length > 0 && all.every((r) => r.health !== 'unknown') ? all : undefined;
      },
      { what: 'every rule to be evaluated once' },
    );
    for (const rule of rules) {
      expect(`${rule.name}: ${rule.health} ${rule.lastError ?? ''}`.trim()).toBe(`${rule.name}: ok`);
      const result = await prometheus.query(rule.query);
      expect(`${rule.name}: ${result.status} ${result.error ?? ''}`.trim()).toBe(`${rule.name}: success`);
    }
  });

  it('evaluates every query of every dashboard panel without error, and the core panels return data', async () => {
    await waitUntil(async () => (await prometheus.vector('bullpen:lane_completed:rate5m{lane="alpha"} > 0')).length === 1, {
      what: 'recording rules over the workload',
    });
    const values = await prometheus.api<{ data: string[] }>(`/api/v1/label/lane/values?match[]=bullpen_queue_jobs`);
    expect(values.data).toEqual(['alpha', 'beta']); // the lane variable's options
    const substitute = (expr: string) =>
      expr.replaceAll('$__rate_interval', '1m').replaceAll('$__interval', '15s').replaceAll('$__range', '10m').replaceAll('$lane', 'alpha');
    const apiOrWorker = new Set(metricsOf('api', 'worker').map((d) => d.name));
    for (const file of ['overview.json', 'lane.json']) {
      const dashboard = JSON.parse(readFileSync(path.join(REPO_ROOT, 'grafana/dashboards', file), 'utf8')) as {
        panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
      };
      for (const panel of dashboard.panels) {
        for (const target of panel.targets) {
          const expr = substitute(target.expr);
          const result = await prometheus.query(expr);
          const where = `${file} "${panel.title}": ${expr}`;
          expect(`${where} → ${result.status} ${result.error ?? ''}`.trim()).toBe(`${where} → success`);
          const core =
            !expr.includes('ALERTS') && !namesIn(expr).metrics.some((m) => apiOrWorker.has(catalogueNameOf(m) ?? m));
          if (!core) continue;
          // Series go stale for a scrape or two around the exporter's restart: wait them back.
          const rows = await waitUntil(async () => (await prometheus.vector(expr)).length, { timeoutMs: 10_000 }).catch(() => 0);
          expect(`${where} → ${rows} series`).not.toBe(`${where} → 0 series`);
        }
      }
    }
  });

  it('has promtool check metrics accept live scrapes of the exporter and of the catalogue API and worker metrics', async () => {
    for (const text of await liveScrapes()) {
      const result = promtool(['check', 'metrics'], text);
      expect(`${result.status} ${result.stdout}${result.stderr}`.trim()).toBe('0');
    }
  });

  it('names in dashboards and rules only metrics that are in the catalogue and in a live scrape', async () => {
    const live = new Set<string>();
    for (const text of await liveScrapes()) {
      for (const name of declaredMetrics(text)) live.add(name);
    }
    const texts = [
      readFileSync(path.join(REPO_ROOT, 'grafana/dashboards/overview.json'), 'utf8'),
      readFileSync(path.join(REPO_ROOT, 'grafana/dashboards/lane.json'), 'utf8'),
      readFileSync(path.join(REPO_ROOT, 'prometheus/rules/recording.yml'), 'utf8'),
      readFileSync(path.join(REPO_ROOT, 'prometheus/rules/alerts.yml'), 'utf8'),
    ];
    const named = new Set(texts.flatMap((t) => namesIn(t).metrics));
    expect(named.size).toBeGreaterThan(20);
    for (const metric of named) {
      const base = catalogueNameOf(metric);
      expect(`${metric}: ${base ? 'catalogue' : 'NOT in catalogue'}, ${base && live.has(base) ? 'scraped' : 'NOT scraped'}`).toBe(
        `${metric}: catalogue, scraped`,
      );
    }
  });
});
