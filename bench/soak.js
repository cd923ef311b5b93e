#!/usr/bin/env node
// `npm run soak`: a long run of bullpen as deployed — the API, two worker processes and the
// exporter on one Redis — through N jobs (1,000,000 by default) across four lanes, sent over REST
// bulk no faster than the workers keep up, with a realistic mix of successes, slow jobs, transient
// failures and dead letters. It checks that the workers' and the exporter's RSS stay flat after
// warm-up, that Redis memory stays under what the lanes' retention allows, and that every accepted
// job ends completed or dead-lettered. Prints a summary, writes JSON, exits 1 if a check fails.
// Not run in CI (test/soak-smoke.test.ts runs a tiny one). With `--tracing on` every process
// samples 100% of its traces and exports them to a local OTLP/HTTP sink, which counts them: the
// same checks then judge the processes with their spans made, held and sent.
//
//   node bench/soak.js [--jobs 1000000] [--out bench-results/soak-latest.json] [--batch 250]
//                      [--max-backlog 2000] [--workers 2] [--warmup-pct 10] [--sample-ms 2000]
//                      [--events-max-len 50000] [--time-limit-minutes 120] [--send-minutes M] [--drop-jobs K]
//                      [--tracing off|on]
//
// Build first (npm run soak does). Uses REDIS_URL when set (under its own soak-<pid> prefix, deleted
// at the end), else a private redis-server.
'use strict';
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { jobKeys, laneEventsKey, lanePrefix, laneStateKeys } = require('@bullpen/core');
const { Queue } = require('bullmq');
const { assertBuilt, writeLanes, BullpenStack, ROOT } = require('./lib/bullpen');
const { Children, guardRun } = require('./lib/children');
const { unfinished } = require('./lib/drain');
const { machineInfo } = require('./lib/machine');
const { MemorySampler } = require('./lib/memory-trend');
const { startOtlpSink } = require('./lib/otlp-sink');
const { connect, connectionOptions, deletePrefix, openRedis, quiet } = require('./lib/redis');
const { checks, measuredSizes, soakTable } = require('./lib/soak-report');
const { LANES, MixStream, lanesFile, outcomeOf, redisBound } = require('./lib/soak-workload');
const { round } = require('./lib/stats');
const { until } = require('./lib/wait');

const USAGE = `usage: node bench/soak.js [--jobs N] [--out FILE] [--batch B] [--max-backlog J] [--workers W] [--warmup-pct P]
       [--sample-ms MS] [--events-max-len L] [--time-limit-minutes M] [--send-minutes M] [--min-judged-jobs J] [--drop-jobs K]
       [--tracing off|on]`;

const OPTIONS = {
  '--jobs': ['jobs', 1_000_000],
  '--batch': ['batch', 250],
  '--max-backlog': ['maxBacklog', 2000],
  '--workers': ['workers', 2],
  '--warmup-pct': ['warmupPct', 10],
  '--sample-ms': ['sampleMs', 2000],
  '--events-max-len': ['eventsMaxLen', 50_000],
  '--time-limit-minutes': ['timeLimitMinutes', 120],
  '--min-judged-jobs': ['minJudgedJobs', 100_000],
  '--drop-jobs': ['dropJobs', 0],
  '--send-minutes': ['sendMinutes', null],
};
/** RSS may wander this much (or this share of its warm level, if more) and still be flat. */
const RSS_TOLERANCE = { toleranceMb: 16, tolerancePct: 10 };
const EXPORTER_SETTLE_MS = 5000;
const FINISHED = ['bullpen_jobs_enqueued_total', 'bullpen_jobs_completed_total', 'bullpen_jobs_dead_lettered_total', 'bullpen_exporter_events_lost_total'];

function parseArgs(argv) {
  const config = { ...Object.fromEntries(Object.values(OPTIONS)), tracing: 'off' };
  let out = path.join(ROOT, 'bench-results', 'soak-latest.json');
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag}: expected a value\n${USAGE}`);
    if (flag === '--out') {
      out = path.resolve(value);
      continue;
    }
    if (flag === '--tracing') {
      if (value !== 'on' && value !== 'off') throw new Error(`--tracing: expected on or off, got ${value}`);
      config.tracing = value;
      continue;
    }
    const option = OPTIONS[flag];
    if (!option) throw new Error(`unknown argument ${flag}\n${USAGE}`);
    const n = Number(value);
    const min = flag === '--drop-jobs' ? 0 : 1;
    if (!Number.isInteger(n) || n < min) throw new Error(`${flag}: expected an integer of at least ${min}, got ${value}`);
    config[option[0]] = n;
  }
  if (config.batch > 1000) throw new Error('--batch: expected at most 1000 (the API takes up to 1000 jobs a request)');
  if (config.warmupPct >= 100) throw new Error('--warmup-pct: expected less than 100');
  if (config.dropJobs >= config.jobs / 2) throw new Error('--drop-jobs: expected fewer than half of --jobs');
  return { config, out };
}

/** Sends config.jobs jobs across the lanes in bulk, each lane's backlog kept under maxBacklog. */
async function enqueueAll(ctx) {
  const { config, stack, queues, log } = ctx;
  const mix = new MixStream();
  const lanes = Object.keys(LANES);
  const sent = { accepted: 0, byKind: {}, expected: { completed: 0, dead: 0 }, unavailable: { answers: 0, landed: 0 }, requeued: 0, dropped: 0 };
  const count = (kind) => {
    sent.accepted += 1;
    sent.byKind[kind] = (sent.byKind[kind] ?? 0) + 1;
    sent.expected[outcomeOf(kind)] += 1;
  };
  let carried = { kinds: [], jobs: [] };
  let next = 0;
  let nextLog = 0;
  const t0 = Date.now();
  const sendUntil = config.sendMinutes ? t0 + config.sendMinutes * 60_000 : Infinity;
  while (sent.accepted < config.jobs) {
    if (Date.now() >= sendUntil) {
      // A slow machine: stop sending and judge what was sent, saying so, rather than run past the time.
      sent.stoppedEarly = `--send-minutes ${config.sendMinutes} passed after ${sent.accepted} of ${config.jobs} jobs`;
      log(`stopped sending: ${sent.stoppedEarly}`);
      break;
    }
    const lane = lanes[next++ % lanes.length];
    const queue = queues[lane];
    await until(async () => (await unfinished(queue)) < config.maxBacklog, `lane ${lane} to fall under ${config.maxBacklog} unfinished jobs`, 300_000, 20);
    const size = Math.min(config.batch, config.jobs - sent.accepted);
    const fresh = mix.take(Math.max(0, size - carried.jobs.length));
    const batch = { kinds: [...carried.kinds, ...fresh.kinds].slice(0, size), jobs: [...carried.jobs, ...fresh.jobs].slice(0, size) };
    carried = { kinds: [], jobs: [] };
    const res = await stack.submitBulk(lane, batch.jobs);
    if (res.status === 503 && Array.isArray(res.body?.jobIds)) {
      // Redis answered the API too late: the batch may or may not be in. Find out, as the answer
      // says to, and send it again only if it is not (one MULTI: all of its jobs or none).
      const landed = await batchLanded(ctx.redis, ctx.prefix, lane, res.body.jobIds);
      sent.unavailable.answers += 1;
      if (landed) {
        sent.unavailable.landed += 1;
        for (const kind of batch.kinds) count(kind);
      } else {
        carried = batch;
      }
      continue;
    }
    if (res.status !== 200) throw new Error(`bulk enqueue to ${lane} answered ${res.status}: ${JSON.stringify(res.body).slice(0, 300)}`);
    const created = [];
    for (const item of res.body.results) {
      const kind = batch.kinds[item.index];
      if (item.status === 'created') {
        created.push(item.id);
        count(kind);
      } else if (item.status === 'rejected') {
        carried.kinds.push(kind);
        carried.jobs.push(batch.jobs[item.index]);
        sent.requeued += 1;
      } else {
        throw new Error(`bulk enqueue to ${lane}: item ${item.index} came back ${item.status}: ${JSON.stringify(item).slice(0, 300)}`);
      }
    }
    if (config.dropJobs > sent.dropped && sent.accepted >= config.jobs / 2) sent.dropped += await dropJobs(ctx.redis, ctx.prefix, lane, created, config.dropJobs - sent.dropped);
    if (sent.accepted >= nextLog) {
      const s = (Date.now() - t0) / 1000;
      log(`${sent.accepted.toLocaleString('en-US')} accepted (${round(sent.accepted / Math.max(s, 0.001))} jobs/s)`);
      nextLog += Math.max(config.batch, Math.round(config.jobs / 20));
    }
  }
  sent.seconds = round((Date.now() - t0) / 1000, 1);
  return sent;
}

/**
 * Whether a batch the API answered 503 for was added after all: its jobs were added in one MULTI,
 * so any of them existing means all were. Polled for a while, since the MULTI may still be queued
 * in Redis; its dead letters outlive the retention of completed jobs, so the answer is found even
 * if the fast ones already finished and were removed.
 */
async function batchLanded(redis, prefix, lane, ids) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const pipeline = redis.pipeline();
    for (const id of ids) pipeline.exists(jobKeys(prefix, lane, id).job);
    const found = (await pipeline.exec()).some(([err, n]) => !err && n === 1);
    if (found || Date.now() > deadline) return found;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * Loss on purpose, for proving the loss check: takes up to k of the just-created jobs out of the
 * lane's wait list and deletes them, behind bullpen's back. Only jobs still waiting are taken, so
 * exactly the number returned can never finish.
 */
async function dropJobs(redis, prefix, lane, ids, k) {
  let dropped = 0;
  for (const id of ids) {
    if (dropped >= k) break;
    if ((await redis.lrem(laneStateKeys(prefix, lane).wait, 1, id)) === 1) {
      await redis.del(jobKeys(prefix, lane, id).job);
      dropped += 1;
    }
  }
  return dropped;
}

/** The exporter's totals over every lane: { enqueued, completed, dead, eventsLost }. */
async function exporterTotals(stack) {
  const t = await stack.exporterTotals(FINISHED);
  const sum = (name) => Object.values(t[name]).reduce((a, b) => a + b, 0);
  return {
    enqueued: sum('bullpen_jobs_enqueued_total'),
    completed: sum('bullpen_jobs_completed_total'),
    dead: sum('bullpen_jobs_dead_lettered_total'),
    eventsLost: sum('bullpen_exporter_events_lost_total'),
  };
}

/** Waits until Redis holds no unfinished job and the exporter's totals have stopped moving. */
async function drain(ctx, sent) {
  const { queues, stack, config } = ctx;
  const all = Object.values(queues);
  const drainTimeoutMs = 600_000;
  await until(async () => (await Promise.all(all.map(unfinished))).every((n) => n === 0), 'every lane to drain', drainTimeoutMs, 200);
  let last = await exporterTotals(stack);
  let since = Date.now();
  return until(async () => {
    const now = await exporterTotals(stack);
    if (now.completed + now.dead >= sent.accepted && now.enqueued >= sent.accepted) return now;
    if (JSON.stringify(now) !== JSON.stringify(last)) {
      last = now;
      since = Date.now();
    }
    // Fewer than were sent and no longer moving: report what the exporter counted.
    return Date.now() - since >= EXPORTER_SETTLE_MS ? now : undefined;
  }, `the exporter to count all ${config.jobs} jobs`, 300_000, 250);
}

/** What Redis keeps per lane at the end: completed and failed set sizes, event stream length. */
async function retained(redis, prefix) {
  const out = {};
  const policy = lanesFile().lanes;
  for (const lane of Object.keys(LANES)) {
    const keys = laneStateKeys(prefix, lane);
    const [completed, failed, stream] = await Promise.all([redis.zcard(keys.completed), redis.zcard(keys.failed), redis.xlen(laneEventsKey(prefix, lane))]);
    out[lane] = {
      completed,
      completedLimit: policy[lane].retention.completed.count,
      failed,
      failedLimit: policy[lane].retention.failed.count,
      eventStreamLength: stream,
    };
  }
  return out;
}

async function main() {
  const { config, out } = parseArgs(process.argv.slice(2));
  assertBuilt();
  const startedAt = new Date();
  const children = new Children();
  const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'bullpen-soak-'));
  const prefix = `soak-${process.pid}`;
  const queues = {};
  let redis;
  let stack;
  let sampler;
  let sink;
  let owned = true;
  let finishing = false;
  const cleanup = async () => {
    finishing = true;
    await sampler?.stop();
    await stack?.stop();
    await Promise.all(Object.values(queues).map((q) => q.close()));
    if (redis && !owned) await deletePrefix(redis, prefix).catch(() => undefined);
    redis?.disconnect();
    await children.stopAll(3000);
    await sink?.close();
    fs.rmSync(tmpDir, { recursive: true, force: true });
  };
  const disarm = guardRun({ name: 'soak', children, limitMs: config.timeLimitMinutes * 60_000, cleanup });
  const log = (msg) => process.stdout.write(`[soak ${((Date.now() - startedAt.getTime()) / 1000).toFixed(1)} s] ${msg}\n`);

  try {
    const opened = await openRedis(children);
    owned = opened.owned;
    redis = connect(opened.url, 'bullpen-soak');
    const machine = await machineInfo(redis);
    log(`Redis ${machine.redisVersion} at ${opened.url} (${owned ? 'private redis-server' : 'REDIS_URL'}); ${machine.cpus} x ${machine.model}`);

    stack = new BullpenStack({
      children,
      redisUrl: opened.url,
      prefix,
      lanesFile: writeLanes(tmpDir, 'soak-lanes.json', lanesFile()),
      apiKey: `soak-${crypto.randomBytes(12).toString('hex')}`,
      tracing: config.tracing === 'on' ? { endpoint: (sink = await startOtlpSink({ countOnArrival: true })).endpoint } : 'off',
      label: 'soak',
      env: { EVENTS_MAX_LEN: String(config.eventsMaxLen) },
    });
    await Promise.all([stack.startApi(), stack.startExporter()]);
    await Promise.all(Array.from({ length: config.workers }, () => stack.startWorker()));
    // A process that dies mid-run is named at once, with its last output, in the soak's log.
    for (const child of children.all) {
      child.exited.then((status) => {
        if (!finishing) log(`${child.name} (pid ${child.pid}) exited (${status.signal ?? status.code}) during the soak${child.tailText()}`);
      });
    }
    // Observers only: skipMetasUpdate, or BullMQ would write its default events maxLen (10,000)
    // over the one bullpen's processes set from EVENTS_MAX_LEN.
    for (const lane of Object.keys(LANES)) {
      queues[lane] = quiet(new Queue(lane, { connection: connectionOptions(opened.url), prefix: lanePrefix(prefix, lane), skipMetasUpdate: true }));
    }
    const baselineBytes = Number(/^used_memory:(\d+)/m.exec(await redis.info('memory'))?.[1]);
    const bound = redisBound({ baselineBytes, eventsMaxLen: config.eventsMaxLen, maxBacklog: config.maxBacklog, batch: config.batch, workers: config.workers });

    const pids = { api: stack.api.child.pid, exporter: stack.exporter.child.pid };
    stack.workers.forEach((w, i) => (pids[`worker-${i + 1}`] = w.child.pid));
    let lastFinished = 0;
    const progress = () => exporterTotals(stack).then((t) => (lastFinished = t.completed + t.dead), () => lastFinished);
    sampler = new MemorySampler({ redis, pids, progress, intervalMs: config.sampleMs, onError: (err) => log(`sample failed: ${err.message}`) });
    sampler.start();
    const sendingFrom = Date.now();

    log(`sending ${config.jobs.toLocaleString('en-US')} jobs to ${Object.keys(LANES).join(', ')} with ${config.workers} workers`);
    const sent = await enqueueAll({ config, stack, queues, log, redis, prefix });
    log(`all sent in ${sent.seconds} s; draining`);
    const totals = await drain({ config, stack, queues }, sent);
    await sampler.stop();
    await sampler.sample();
    const durationSeconds = round((Date.now() - startedAt.getTime()) / 1000, 1);
    // From the first job sent to the last one counted: the rate the stack sustained.
    const processingSeconds = round((Date.now() - sendingFrom) / 1000, 1);

    const alive = Object.fromEntries([['api', stack.api.child], ['exporter', stack.exporter.child], ...stack.workers.map((w, i) => [`worker-${i + 1}`, w.child])].map(([n, c]) => [n, c.running]));
    const keep = await retained(redis, prefix);
    const sizes = await measuredSizes(redis, prefix, Object.keys(LANES));
    const unfinishedAtEnd = (await Promise.all(Object.values(queues).map(unfinished))).reduce((a, b) => a + b, 0);
    const result = checks({ config, sent, totals, samples: sampler.samples, bound, keep, sizes, alive, unfinishedAtEnd, rssTolerance: RSS_TOLERANCE });
    let tracing;
    if (sink) {
      // Stopped gracefully, each process exports the spans still waiting for their batch.
      finishing = true;
      await stack.stop();
      tracing = sink.snapshot();
    }
    const report = {
      startedAt: startedAt.toISOString(),
      durationSeconds,
      processingSeconds,
      jobsPerSecond: round(sent.accepted / processingSeconds),
      machine,
      config: { ...config, redis: owned ? 'private redis-server' : 'REDIS_URL', lanes: lanesFile() },
      sent,
      exporterTotals: totals,
      retained: keep,
      measuredBytes: sizes,
      ...(tracing ? { tracing } : {}),
      ...result,
      samples: sampler.samples,
    };
    fs.mkdirSync(path.dirname(out), { recursive: true });
    fs.writeFileSync(out, `${JSON.stringify(report, null, 2)}\n`);
    process.stdout.write(`\n${soakTable(report)}\n\nwritten to ${path.relative(process.cwd(), out) || out}\n`);
    return result.passed ? 0 : 1;
  } catch (err) {
    // Often the sign of a process that died: give its exit a moment to arrive, then name it.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    for (const child of stack?.processes ?? []) {
      if (!child.running) process.stderr.write(`soak: ${child.name} (pid ${child.pid}) had exited (${child.child.signalCode ?? child.child.exitCode})${child.tailText()}\n`);
    }
    throw err;
  } finally {
    disarm();
    await cleanup();
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`soak: ${err?.stack ?? err}\n`);
    process.exit(1);
  },
);
