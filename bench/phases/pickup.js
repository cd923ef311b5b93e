// §3 Idle pickup latency: one job at a time to an idle worker, the next one only after the last
// completed. Measured the same way for both, from what the handler returns about its start:
// - pickup: handler start minus the job's BullMQ timestamp (set when the job was added), both
//   wall-clock milliseconds (BullMQ stores whole ms, so this has 1 ms resolution); the target;
// - sendToStart: from the producer starting its call (bullpen: the REST POST; bare: queue.add) to
//   handler start, on the monotonic clock all processes share (microsecond resolution).
'use strict';
const path = require('node:path');
const { Queue } = require('bullmq');
const { startBareWorker } = require('../lib/bare');
const { BullpenStack, LANE } = require('../lib/bullpen');
const { Completions } = require('../lib/completions');
const { jsonPost } = require('../lib/load');
const { connectionOptions, deletePrefix, quiet } = require('../lib/redis');
const { summarize } = require('../lib/stats');

const HANDLERS_DIR = path.join(__dirname, '..', 'handlers');
const WARMUP_JOBS = 10;
const JOB_TIMEOUT_MS = 10_000;


/**
 * Submits one job, waits for its handler's start, and records the two latencies (after warm-up).
 * `submit()` resolves with { id, timestamp }.
 */
function recorder(completions, submit) {
  const pickup = [];
  const sendToStart = [];
  return {
    async one(record) {
      const sentAtNs = process.hrtime.bigint();
      const { id, timestamp } = await submit();
      const { startedAtMs, startedAtNs } = await completions.wait(id, JOB_TIMEOUT_MS);
      if (!record) return;
      pickup.push(startedAtMs - timestamp);
      sendToStart.push(Number(BigInt(startedAtNs) - sentAtNs) / 1e6);
    },
    summary: () => ({ pickup: summarize(pickup), sendToStart: summarize(sendToStart) }),
  };
}

/** Bare BullMQ: queue.add to an idle Worker process. Returns its recorder and how to stop it. */
async function bareSide(ctx) {
  const prefix = ctx.prefix('pickup-bare');
  const connection = connectionOptions(ctx.redisUrl);
  const queue = quiet(new Queue(LANE, { connection, prefix }));
  const completions = new Completions(LANE, { connection, prefix });
  let worker;
  const stop = async () => {
    await worker?.stop();
    await completions.close();
    await queue.close();
    await deletePrefix(ctx.redis, prefix);
  };
  try {
    await Promise.all([queue.waitUntilReady(), completions.ready()]);
    worker = await startBareWorker(ctx, { prefix, queue: LANE, processor: 'stamp', label: 'pickup-bare' });
  } catch (err) {
    await stop();
    throw err;
  }
  const side = recorder(completions, async () => {
    const job = await queue.add('stamp', {});
    return { id: job.id, timestamp: job.timestamp };
  });
  return { ...side, stop };
}

/** bullpen: REST submit to the API, run by an idle worker process. */
async function bullpenSide(ctx) {
  const prefix = ctx.prefix('pickup');
  const stack = BullpenStack.forRun(ctx, {
    prefix,
    handlersDir: HANDLERS_DIR,
    label: 'pickup',
  });
  const completions = new Completions(LANE, { connection: connectionOptions(ctx.redisUrl), prefix: stack.queuePrefix });
  const stop = async () => {
    await completions.close();
    await stack.stop();
    await deletePrefix(ctx.redis, prefix);
  };
  try {
    await Promise.all([stack.startApi(), stack.startWorker(), completions.ready()]);
  } catch (err) {
    await stop();
    throw err;
  }
  const request = jsonPost({ name: 'stamp', data: {} }, stack.authHeader());
  const side = recorder(completions, async () => {
    const res = await stack.api.client.request('POST', `/v1/lanes/${LANE}/jobs`, request);
    if (res.status !== 201) throw new Error(`submit answered ${res.status}: ${res.body.slice(0, 300)}`);
    const body = JSON.parse(res.body);
    // createdAt is the job's BullMQ timestamp, as an ISO string.
    return { id: body.id, timestamp: Date.parse(body.createdAt) };
  });
  return { ...side, stop };
}

// Both sides are up at once and take turns, one job each, the side going first alternating: a
// burst of outside load on a shared machine then lands on both alike, where running one side's
// 1,000 jobs after the other's let it land on one (p99 ratios of 1.0 and 1.8 were seen for the
// same code). Nothing else runs meanwhile: each side is idle while the other's job runs.
async function run(ctx) {
  const jobs = ctx.config.pickupJobs;
  ctx.log(`pickup latency: bare BullMQ and bullpen taking turns, ${jobs} jobs each, one at a time`);
  const bare = await bareSide(ctx);
  let bullpen;
  try {
    bullpen = await bullpenSide(ctx);
    for (let i = 0; i < WARMUP_JOBS + jobs; i += 1) {
      const record = i >= WARMUP_JOBS;
      const [first, second] = i % 2 === 0 ? [bare, bullpen] : [bullpen, bare];
      await first.one(record);
      await second.one(record);
    }
  } finally {
    await bullpen?.stop();
    await bare.stop();
  }
  return {
    jobs,
    method: {
      pickup: "handler start (Date.now()) minus the job's BullMQ timestamp; whole milliseconds",
      sendToStart: 'producer call start (bullpen: REST POST; bare: queue.add) to handler start; monotonic clock',
      order: 'both sides up at once, one job each in turn, the side going first alternating',
    },
    bare: bare.summary(),
    bullpen: bullpen.summary(),
  };
}

module.exports = { run };
