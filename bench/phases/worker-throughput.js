// §1 Worker throughput: N no-op jobs enqueued in batches of 1000, then drained by a worker process
// at concurrency 50 — bare BullMQ (Queue.addBulk, bench/bare-worker.js) against bullpen's full
// path (REST bulk through the API process, the worker process with metrics on and logs at info,
// the exporter process running). The worker starts only once every job is enqueued.
//
// On a shared machine one pair of runs can land a burst of outside load on either side, and the
// ratio then swings (0.44 to 0.97 for the same code was seen). So the two sides run in pairs,
// `rounds` of them, the side that goes first alternating; the ratios reported are the
// medians of the pairs' ratios, and `bare`/`bullpen` are the pair with the median drain ratio.
'use strict';
const { performance } = require('node:perf_hooks');
const { Queue } = require('bullmq');
const { startBareWorker } = require('../lib/bare');
const { BullpenStack, LANE, BULK_MAX } = require('../lib/bullpen');
const { cpuSeconds, rssBytes } = require('../lib/children');
const { monotonicUs, timeDrain, unfinished } = require('../lib/drain');
const { startRedisCost } = require('../lib/redis-cost');
const { connectionOptions, deletePrefix, quiet } = require('../lib/redis');
const { pairedRounds } = require('../lib/paired-rounds');
const { median, round } = require('../lib/stats');
const { until } = require('../lib/wait');

const CONCURRENCY = 50;
const NOOP = { name: 'noop', data: {} };

function rate(n, ms) {
  return { ms: round(ms, 1), jobsPerSec: round(n / (ms / 1000)) };
}

async function bareArm(ctx, label) {
  const { n } = ctx.config;
  const prefix = ctx.prefix('bare');
  const queue = quiet(new Queue(LANE, { connection: connectionOptions(ctx.redisUrl), prefix }));
  let worker;
  try {
    const batch = Array.from({ length: Math.min(n, BULK_MAX) }, () => ({ ...NOOP, opts: { removeOnComplete: true } }));
    const redisCost = await startRedisCost(ctx);
    const window0 = monotonicUs();
    const producerCpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let sent = 0; sent < n; sent += BULK_MAX) await queue.addBulk(batch.slice(0, Math.min(BULK_MAX, n - sent)));
    const ms = performance.now() - t0;
    const producerCpu = process.cpuUsage(producerCpu0);
    const window = [window0, monotonicUs()];
    // The bench process is the producer here: its CPU stands beside the API's on bullpen's side.
    const producerCpuMsPerJob = round((producerCpu.user + producerCpu.system) / 1000 / n, 4);
    const enqueue = { ...rate(n, ms), ...(await redisCost(n)), producerCpuMsPerJob, monotonicWindowUs: window };

    await queue.pause();
    worker = await startBareWorker(ctx, { prefix, queue: LANE, processor: 'noop', concurrency: CONCURRENCY, label });
    const cpu0 = cpuSeconds(worker.pid);
    const drain = await timeDrain(queue, n, { timeoutMs: ctx.drainTimeoutMs, redis: ctx.redis, redisPid: ctx.redisPid });
    const workerCpu = cpuSeconds(worker.pid) - cpu0;
    return { enqueue, drain: { ...drain, workerCpuMsPerJob: round((workerCpu * 1000) / n, 4), workerRssMb: round((rssBytes(worker.pid) ?? 0) / 2 ** 20, 1) } };
  } finally {
    await worker?.stop();
    await queue.close();
    await deletePrefix(ctx.redis, prefix);
  }
}

/**
 * bullpen's full path for n no-op jobs; `tracing` as in BullpenStack. Returns enqueue and drain
 * rates with the worker's CPU per job, whether its metrics endpoint answered, and how long after
 * the drain the exporter had counted every completion.
 */
async function bullpenArm(ctx, { label, tracing = 'inherit', profile = false }) {
  const { n } = ctx.config;
  const prefix = ctx.prefix(label);
  const stack = BullpenStack.forRun(ctx, {
    prefix,
    tracing,
    label,
    ...(profile && ctx.profileDir ? { profileDir: ctx.profileDir } : {}),
  });
  const queue = quiet(new Queue(LANE, { connection: connectionOptions(ctx.redisUrl), prefix: stack.queuePrefix }));
  try {
    await Promise.all([stack.startApi(), stack.startExporter()]);
    const apiCpu0 = cpuSeconds(stack.api.child.pid);
    const redisCost = await startRedisCost(ctx);
    const enqueueWindow0 = monotonicUs();
    const t0 = performance.now();
    const outcome = await stack.enqueueBulk(n, NOOP, () => unfinished(queue));
    const ms = performance.now() - t0;
    const enqueueWindow = [enqueueWindow0, monotonicUs()];
    const enqueue = { ...rate(n, ms), ...(await redisCost(n)) };
    if (outcome.unavailable > 0) {
      // The rate includes the waits that checked what landed; the 503s themselves are a finding.
      enqueue.unavailableAnswers = outcome.unavailable;
      enqueue.landedDespite503 = outcome.landedDespite503;
    }
    const apiCpu = cpuSeconds(stack.api.child.pid) - apiCpu0;

    await queue.pause();
    const { child } = await stack.startWorker();
    const cpu0 = cpuSeconds(child.pid);
    const exporterCpu0 = cpuSeconds(stack.exporter.child.pid);
    const drain = await timeDrain(queue, n, { timeoutMs: ctx.drainTimeoutMs, redis: ctx.redis, redisPid: ctx.redisPid });
    const workerCpu = cpuSeconds(child.pid) - cpu0;
    const exporterCpu = cpuSeconds(stack.exporter.child.pid) - exporterCpu0;
    const drainedAt = performance.now();
    const metricsServed = await stack.workerMetricsServed();
    let exporterCaughtUpMs = null;
    try {
      await until(async () => (await stack.exporterCounter('bullpen_jobs_completed_total')) >= n, 'the exporter to count every completion', 60_000, 50);
      exporterCaughtUpMs = round(performance.now() - drainedAt);
    } catch {
      // Reported as null: the exporter had not counted them all within a minute.
    }
    return {
      enqueue: { ...enqueue, apiCpuMsPerJob: round((apiCpu * 1000) / n, 4), monotonicWindowUs: enqueueWindow },
      drain: {
        ...drain,
        workerCpuMsPerJob: round((workerCpu * 1000) / n, 4),
        exporterCpuMsPerJob: round((exporterCpu * 1000) / n, 4),
        workerRssMb: round((rssBytes(child.pid) ?? 0) / 2 ** 20, 1),
        workerMetricsServed: metricsServed,
      },
      exporterCaughtUpMs,
    };
  } finally {
    await stack.stop();
    await queue.close();
    await deletePrefix(ctx.redis, prefix);
  }
}

async function run(ctx) {
  const { n, rounds } = ctx.config;
  const { pairs, medianRatio: drainRatio, middle } = await pairedRounds(rounds, {
    // With --profile every process of every round writes its own profile, named by the round.
    runBase: (i) => (ctx.log(`worker throughput: round ${i}/${rounds}, bare BullMQ, ${n} jobs`), bareArm(ctx, `throughput-${i}-bare`)),
    runBullpen: (i) => (ctx.log(`worker throughput: round ${i}/${rounds}, bullpen full path, ${n} jobs`), bullpenArm(ctx, { label: `throughput-${i}`, profile: true })),
    ratio: (bare, bullpen) => bullpen.drain.jobsPerSec / bare.drain.jobsPerSec,
  });
  const enqueueRatioOf = (p) => round(p.bullpen.enqueue.jobsPerSec / p.base.enqueue.jobsPerSec, 3);
  return {
    concurrency: CONCURRENCY,
    batchSize: BULK_MAX,
    rounds,
    drainRatio,
    enqueueRatio: median(pairs.map(enqueueRatioOf)),
    byRound: pairs.map((p) => ({
      drainJobsPerSec: { bare: p.base.drain.jobsPerSec, bullpen: p.bullpen.drain.jobsPerSec },
      drainRatio: p.ratio,
      enqueueJobsPerSec: { bare: p.base.enqueue.jobsPerSec, bullpen: p.bullpen.enqueue.jobsPerSec },
      enqueueRatio: enqueueRatioOf(p),
      workerCpuMsPerJob: { bare: p.base.drain.workerCpuMsPerJob, bullpen: p.bullpen.drain.workerCpuMsPerJob },
      machineIdleShare: { bare: p.base.drain.machineIdleShare, bullpen: p.bullpen.drain.machineIdleShare },
      drainMonotonicWindowUs: { bare: p.base.drain.monotonicWindowUs, bullpen: p.bullpen.drain.monotonicWindowUs },
    })),
    bare: middle.base,
    bullpen: middle.bullpen,
  };
}

module.exports = { run, bullpenArm };
