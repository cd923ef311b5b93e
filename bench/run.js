#!/usr/bin/env node
// `npm run bench`: bullpen against bare BullMQ on one Redis with the same payloads — worker
// throughput and bulk enqueue, single-job REST enqueue against the HTTP floor and queue.add, idle
// pickup latency, tracing overhead, and the exporter's own benchmark. Prints a table and writes
// the JSON result file. Targets are reported, never asserted: the exit code says only whether
// every measurement ran.
//
//   node bench/run.js [--n 50000] [--seconds 10] [--rounds 5] [--pickup-jobs 1000] [--tracing-rounds 3] [--only worker,single,...]
//                     [--exporter-jobs 100000] [--exporter-waiting 1000000] [--profile DIR]
//                     [--out bench-results/latest.json] [--smoke]
//
// Build first (npm run bench does). Uses REDIS_URL when set, else a private redis-server.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { assertBuilt, writeLanesFile, ROOT } = require('./lib/bullpen');
const { Children, guardRun } = require('./lib/children');
const { machineInfo } = require('./lib/machine');
const { connect, openRedis } = require('./lib/redis');
const { ratios, table, targets } = require('./lib/report');
const { round } = require('./lib/stats');

const SECTIONS = {
  workerThroughput: { flag: 'worker', run: (ctx) => require('./phases/worker-throughput').run(ctx) },
  singleEnqueue: { flag: 'single', run: (ctx) => require('./phases/single-enqueue').run(ctx) },
  pickup: { flag: 'pickup', run: (ctx) => require('./phases/pickup').run(ctx) },
  tracing: { flag: 'tracing', run: (ctx) => require('./phases/tracing').run(ctx) },
  exporter: { flag: 'exporter', run: (ctx) => require('./phases/exporter').run(ctx) },
};

const USAGE = `usage: node bench/run.js [--smoke] [--n N] [--seconds S] [--rounds R] [--pickup-jobs J] [--tracing-rounds R] [--exporter-jobs J]
       [--exporter-waiting W] [--only ${Object.values(SECTIONS).map((s) => s.flag).join(',')}] [--profile DIR] [--out FILE]`;

function parseArgs(argv) {
  const smoke = argv.includes('--smoke');
  const config = {
    smoke,
    n: smoke ? 500 : 50_000,
    seconds: smoke ? 1 : 10,
    warmupSeconds: smoke ? 0.3 : 2,
    inFlight: 50,
    // Pairs of bare (or floor) and bullpen runs in the worker and single-enqueue sections. On a
    // shared VM single pairs of the same code were seen from 0.51 to 0.89 of bare in one run, and
    // the median of three still moved by 0.2 between runs; five pairs steady it.
    rounds: smoke ? 1 : 5,
    pickupJobs: smoke ? 50 : 1000,
    tracingRounds: smoke ? 1 : 3,
    exporterJobs: smoke ? 2000 : 100_000,
    exporterWaiting: smoke ? 20_000 : 1_000_000,
  };
  let out = path.join(ROOT, 'bench-results', 'latest.json');
  let only;
  let profileDir;
  const numeric = {
    '--n': 'n',
    '--seconds': 'seconds',
    '--rounds': 'rounds',
    '--pickup-jobs': 'pickupJobs',
    '--tracing-rounds': 'tracingRounds',
    '--exporter-jobs': 'exporterJobs',
    '--exporter-waiting': 'exporterWaiting',
  };
  for (let i = 0; i < argv.length; i += 1) {
    const flag = argv[i];
    if (flag === '--smoke') continue;
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${flag}: expected a value\n${USAGE}`);
    i += 1;
    if (numeric[flag]) {
      const n = Number(value);
      if (!(n > 0) || (flag !== '--seconds' && !Number.isInteger(n))) throw new Error(`${flag}: expected a positive ${flag === '--seconds' ? 'number' : 'integer'}, got ${value}`);
      config[numeric[flag]] = n;
    } else if (flag === '--out') {
      out = path.resolve(value);
    } else if (flag === '--profile') {
      profileDir = path.resolve(value);
    } else if (flag === '--only') {
      only = value.split(',').map((s) => s.trim());
      const known = Object.values(SECTIONS).map((s) => s.flag);
      for (const name of only) if (!known.includes(name)) throw new Error(`--only: unknown section ${name}; expected some of ${known.join(',')}`);
    } else {
      throw new Error(`unknown argument ${flag}\n${USAGE}`);
    }
  }
  if (config.exporterJobs % 10 !== 0) throw new Error('--exporter-jobs: expected a multiple of 10 (one job in ten fails)');
  return { config, out, only, profileDir };
}

function tracingConfigured(env) {
  const endpoint = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT;
  return Boolean(endpoint) && !['true', '1', 'yes'].includes((env.OTEL_SDK_DISABLED ?? '').trim().toLowerCase());
}

async function main() {
  const { config, out, only, profileDir } = parseArgs(process.argv.slice(2));
  assertBuilt();
  const startedAt = new Date();
  const children = new Children();
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bullpen-bench-'));
  let redis;
  let failed = false;

  // Bounded in time and never leaving anything behind: a signal, an overrun or an exit stops
  // every process started here.
  const limitMs = (config.smoke ? 240 : 3600) * 1000;
  const cleanup = async () => {
    redis?.disconnect();
    await children.stopAll(3000);
    fs.rmSync(tmpDir, { recursive: true, force: true });
  };
  const disarm = guardRun({ name: 'bench', children, limitMs, cleanup });

  try {
    const { url: redisUrl, owned, pid: redisPid } = await openRedis(children);
    redis = connect(redisUrl, 'bullpen-bench');
    if (profileDir) fs.mkdirSync(profileDir, { recursive: true });
    const ctx = {
      config,
      children,
      redisUrl,
      redis,
      redisPid,
      apiKey: `bench-${crypto.randomBytes(12).toString('hex')}`,
      lanesFile: writeLanesFile(tmpDir, { concurrency: 50, maxQueueSize: Math.max(2 * config.n, 1_000_000) }),
      profileDir,
      prefix: (name) => `bench-${process.pid}-${name}`,
      drainTimeoutMs: Math.max(120_000, config.n * 10),
      exporterTimeoutMs: config.smoke ? 120_000 : 1_200_000,
      log: (msg) => process.stdout.write(`[bench ${((Date.now() - startedAt.getTime()) / 1000).toFixed(1)} s] ${msg}\n`),
    };
    const machine = await machineInfo(redis);
    ctx.log(`Redis ${machine.redisVersion} at ${redisUrl} (${owned ? 'private redis-server' : 'REDIS_URL'}); ${machine.cpus} x ${machine.model}`);

    const results = {};
    for (const [name, section] of Object.entries(SECTIONS)) {
      if (only && !only.includes(section.flag)) continue;
      try {
        results[name] = await section.run(ctx);
      } catch (err) {
        failed = true;
        results[name] = { error: err?.stack ?? String(err) };
        process.stderr.write(`bench: ${name} failed: ${err?.stack ?? err}\n`);
      }
    }

    const r = ratios(results);
    const report = {
      startedAt: startedAt.toISOString(),
      durationSeconds: round((Date.now() - startedAt.getTime()) / 1000, 1),
      machine,
      config: {
        ...config,
        workerConcurrency: 50,
        bulkBatchSize: 1000,
        redis: owned ? 'private redis-server' : 'REDIS_URL',
        // §1-3 run with the bench's own OTEL_* settings: tracing is on there only if these say so.
        tracingAsConfigured: tracingConfigured(process.env),
        ...(profileDir ? { profileDir } : {}),
      },
      results,
      ratios: r,
      targets: targets(results, r, config),
    };
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(`\n${table(report)}\n\nwritten to ${path.relative(process.cwd(), out) || out}\n`);
  } finally {
    disarm();
    await cleanup();
  }
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`bench: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
