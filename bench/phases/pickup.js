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


/** Runs warm-up + `jobs` submissions; `submit()` resolves with { id, timestamp }. */
async function sequence(jobs, completions, submit) {
  const pickup = [];
  const sendToStart = [];
  for (let i = 0; i < WARMUP_JOBS + jobs; i += 1) {
    const sentAtNs = process.hrtime.bigint();
    const { id, timestamp } = await submit();
    const { startedAtMs, startedAtNs } = await completions.wait(id, JOB_TIMEOUT_MS);
    if (i < WARMUP_JOBS) continue;
    pickup.push(startedAtMs - timestamp);
    sendToStart.push(Number(BigInt(startedAtNs) - sentAtNs) / 1e6);
  }
  return { pickup: summarize(pickup), sendToStart: summarize(sendToStart) };
}

async function bare(ctx) {
  const prefix = ctx.prefix('pickup-bare');
  const connection = connectionOptions(ctx.redisUrl);
  const queue = quiet(new Queue(LANE, { connection, prefix }));
  const completions = new Completions(LANE, { connection, prefix });
  let worker;
  try {
    await Promise.all([queue.waitUntilReady(), completions.ready()]);
    worker = await startBareWorker(ctx, { prefix, queue: LANE, processor: 'stamp', label: 'pickup-bare' });
    return await sequence(ctx.config.pickupJobs, completions, async () => {
      const job = await queue.add('stamp', {});
      return { id: job.id, timestamp: job.timestamp };
    });
  } finally {
    await worker?.stop();
    await completions.close();
    await queue.close();
    await deletePrefix(ctx.redis, prefix);
  }
}

async function bullpen(ctx) {
  const prefix = ctx.prefix('pickup');
  const stack = BullpenStack.forRun(ctx, {
    prefix,
    handlersDir: HANDLERS_DIR,
    label: 'pickup',
  });
  const completions = new Completions(LANE, { connection: connectionOptions(ctx.redisUrl), prefix: stack.queuePrefix });
  try {
    await Promise.all([stack.startApi(), stack.startWorker(), completions.ready()]);
    const request = jsonPost({ name: 'stamp', data: {} }, stack.authHeader());
    return await sequence(ctx.config.pickupJobs, completions, async () => {
      const res = await stack.api.client.request('POST', `/v1/lanes/${LANE}/jobs`, request);
      if (res.status !== 201) throw new Error(`submit answered ${res.status}: ${res.body.slice(0, 300)}`);
      const body = JSON.parse(res.body);
      // createdAt is the job's BullMQ timestamp, as an ISO string.
      return { id: body.id, timestamp: Date.parse(body.createdAt) };
    });
  } finally {
    await completions.close();
    await stack.stop();
    await deletePrefix(ctx.redis, prefix);
  }
}

async function run(ctx) {
  ctx.log(`pickup latency: bare BullMQ, ${ctx.config.pickupJobs} jobs one at a time`);
  const b = await bare(ctx);
  ctx.log(`pickup latency: bullpen, ${ctx.config.pickupJobs} jobs one at a time`);
  const p = await bullpen(ctx);
  return { jobs: ctx.config.pickupJobs, method: {
      pickup: "handler start (Date.now()) minus the job's BullMQ timestamp; whole milliseconds",
      sendToStart: 'producer call start (bullpen: REST POST; bare: queue.add) to handler start; monotonic clock',
    }, bare: b, bullpen: p };
}

module.exports = { run };
