#!/usr/bin/env node
// The bare BullMQ side of the worker measurements, as a process of its own like bullpen's worker:
// a plain Worker on QUEUE under PREFIX at CONCURRENCY whose processor does nothing (PROCESSOR=noop,
// returning what bullpen's noop returns) or returns when it started (PROCESSOR=stamp, as
// bench/handlers/stamp.js does). Prints "ready" once connected; SIGTERM closes it.
'use strict';
const { Worker } = require('bullmq');
const { connectionOptions } = require('./lib/redis');

const { REDIS_URL, PREFIX, QUEUE, CONCURRENCY = '50', PROCESSOR = 'noop' } = process.env;
const processors = {
  noop: async () => ({ ok: true }),
  stamp: async () => ({ startedAtMs: Date.now(), startedAtNs: process.hrtime.bigint().toString() }),
};
const processor = processors[PROCESSOR];
if (!REDIS_URL || !PREFIX || !QUEUE || !processor) {
  process.stderr.write('bare-worker: set REDIS_URL, PREFIX, QUEUE and PROCESSOR (noop or stamp)\n');
  process.exit(2);
}

const worker = new Worker(QUEUE, processor, { connection: connectionOptions(REDIS_URL), prefix: PREFIX, concurrency: Number(CONCURRENCY) });
worker.on('error', (err) => process.stderr.write(`bare-worker: ${err.message}\n`));
worker.waitUntilReady().then(
  () => process.stdout.write('ready\n'),
  (err) => {
    process.stderr.write(`bare-worker: ${err.stack ?? err}\n`);
    process.exit(1);
  },
);
const stop = () => worker.close().then(() => process.exit(0), () => process.exit(1));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
