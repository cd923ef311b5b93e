// §4 Tracing overhead: bullpen's full path (as in §1) with tracing off and with every process
// exporting at 100% sampling to a local OTLP/HTTP sink; the worker's drain rate is compared. The
// two arms alternate for `rounds` rounds and the best of each is kept, because other load on a
// shared machine slows whichever arm it lands on. The worker's CPU per job, which such load
// disturbs less, is compared too.
'use strict';
const { startOtlpSink } = require('../lib/otlp-sink');
const { round } = require('../lib/stats');
const { bullpenArm } = require('./worker-throughput');

const fastest = (runs) => runs.reduce((best, r) => (r.drain.jobsPerSec > best.drain.jobsPerSec ? r : best));

function spansBetween(before, after) {
  const byService = {};
  for (const [service, n] of Object.entries(after.byService)) byService[service] = n - (before.byService[service] ?? 0);
  return { requests: after.requests - before.requests, spans: after.spans - before.spans, byService, unparsed: after.unparsed - before.unparsed };
}

async function run(ctx) {
  const { n, tracingRounds: rounds } = ctx.config;
  const sink = await startOtlpSink();
  try {
    const off = [];
    const on = [];
    for (let i = 1; i <= rounds; i += 1) {
      ctx.log(`tracing: round ${i}/${rounds}, bullpen with tracing off, ${n} jobs`);
      off.push(await bullpenArm(ctx, { label: `trace-off-${i}`, tracing: 'off', profile: true }));
      ctx.log(`tracing: round ${i}/${rounds}, bullpen at 100% sampling to ${sink.endpoint}, ${n} jobs`);
      const before = sink.snapshot();
      const arm = await bullpenArm(ctx, { label: `trace-on-${i}`, tracing: { endpoint: sink.endpoint }, profile: true });
      // The stack has stopped (SIGTERM flushes each process's span batch), so the counts are final.
      on.push({ ...arm, spansReceived: spansBetween(before, sink.snapshot()) });
    }
    const bestOff = fastest(off);
    const bestOn = fastest(on);
    const cpuOff = Math.min(...off.map((r) => r.drain.workerCpuMsPerJob));
    const cpuOn = Math.min(...on.map((r) => r.drain.workerCpuMsPerJob));
    const workerSpans = bestOn.spansReceived.byService['bullpen-worker'] ?? 0;
    return {
      sampling: 1,
      rounds,
      off: bestOff,
      on: bestOn,
      jobsPerSecByRound: { off: off.map((r) => r.drain.jobsPerSec), on: on.map((r) => r.drain.jobsPerSec) },
      workerCpuMsPerJob: { off: cpuOff, on: cpuOn, overhead: round(cpuOn / cpuOff - 1, 3) },
      spansReceived: bestOn.spansReceived,
      workerSpansReceived: workerSpans > 0,
      note:
        workerSpans > 0
          ? `the worker sent ${workerSpans} spans for ${n} jobs`
          : "the worker sent no spans: its tracing is not wired (or exported nothing), so this measures the API's tracing only",
    };
  } finally {
    await sink.close();
  }
}

module.exports = { run };
