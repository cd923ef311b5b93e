// bare BullMQ's worker process (bench/bare-worker.js), started like bullpen's: its own process, so
// both sides pay the same for waking an idle process and neither shares the bench's event loop.
'use strict';
const path = require('node:path');

const BARE_WORKER = path.join(__dirname, '..', 'bare-worker.js');

/** Starts a plain BullMQ Worker process on `queue`; resolves with its Child once it is connected. */
async function startBareWorker(ctx, { prefix, queue, processor, concurrency = 50, label = 'bare' }) {
  const args = ctx.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${ctx.profileDir}`, `--cpu-prof-name=${label}-worker-${Date.now()}.cpuprofile`] : [];
  const child = ctx.children.spawn(`bare worker (${processor})`, process.execPath, [...args, BARE_WORKER], {
    env: {
      PATH: process.env.PATH,
      REDIS_URL: ctx.redisUrl,
      PREFIX: prefix,
      QUEUE: queue,
      CONCURRENCY: String(concurrency),
      PROCESSOR: processor,
    },
  });
  try {
    await child.waitForLine(/^ready$/, 'the bare worker to connect', 30_000);
  } catch (err) {
    await child.stop();
    throw err;
  }
  return child;
}

module.exports = { startBareWorker };
