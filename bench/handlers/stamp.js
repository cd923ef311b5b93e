// `stamp` {}: returns when its handler started, for the pickup-latency measurement (the bare
// BullMQ worker of that measurement returns the same): wall-clock ms, comparable with the job's
// BullMQ timestamp, and the monotonic clock in ns, which every process on the machine shares.
'use strict';
const { defineHandler } = require('@bullpen/worker');

module.exports = defineHandler({
  name: 'stamp',
  run: () => ({ startedAtMs: Date.now(), startedAtNs: process.hrtime.bigint().toString() }),
});
