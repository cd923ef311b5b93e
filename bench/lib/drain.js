// Worker throughput, timed the same way for bare BullMQ and bullpen: the lane is full and paused,
// the worker is connected and idle; the clock starts when the lane is resumed and stops when no job
// is left waiting or active.
'use strict';
const { performance } = require('node:perf_hooks');
const { startRedisCost } = require('./redis-cost');
const { round } = require('./stats');
const { until } = require('./wait');

/** Microseconds on the monotonic clock every process shares (and V8's profiler stamps samples with). */
const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

const UNFINISHED = ['waiting', 'paused', 'prioritized', 'delayed', 'active'];

/** The machine's CPU time so far, idle and in all, from /proc/stat (in ticks); undefined off Linux. */
function machineCpuTicks() {
  try {
    const line = require('node:fs').readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
    // cpu user nice system idle iowait irq softirq steal (guest time is counted in user already)
    const t = line.trim().split(/\s+/).slice(1, 9).map(Number);
    if (t.length < 5 || t.some((v) => !Number.isFinite(v))) return undefined;
    return { idle: t[3] + t[4], total: t.reduce((a, b) => a + b, 0) };
  } catch {
    return undefined;
  }
}

/** Share of the machine's CPU time left idle between two readings, or undefined. */
function idleShare(start, end) {
  if (!start || !end || end.total <= start.total) return undefined;
  return round((end.idle - start.idle) / (end.total - start.total), 3);
}

async function unfinished(queue) {
  const counts = await queue.getJobCounts(...UNFINISHED);
  return UNFINISHED.reduce((sum, state) => sum + (counts[state] ?? 0), 0);
}

/**
 * Resumes the paused `queue` holding n jobs and times until it is drained, with what the drain cost
 * Redis per job (`redis`: an admin connection; `redisPid`: a redis-server the bench started).
 */
async function timeDrain(queue, n, { timeoutMs, redis, redisPid }) {
  const left = await unfinished(queue);
  if (left !== n) throw new Error(`expected ${n} jobs in the lane before the drain, found ${left}`);
  const redisCost = await startRedisCost({ redis, redisPid });
  const window0 = monotonicUs();
  const machine0 = machineCpuTicks();
  const t0 = performance.now();
  await queue.resume();
  await until(async () => (await unfinished(queue)) === 0, `the lane to drain (${n} jobs)`, timeoutMs, 5);
  const ms = performance.now() - t0;
  const machineIdleShare = idleShare(machine0, machineCpuTicks());
  const window1 = monotonicUs();
  const cost = await redisCost(n);
  const { failed } = await queue.getJobCounts('failed');
  if (failed > 0) throw new Error(`${failed} of ${n} jobs failed during the drain`);
  return {
    ms: round(ms, 1),
    jobsPerSec: round(n / (ms / 1000)),
    ...cost,
    // How much of the machine's CPU went unused while the lane drained. A drain slower than its
    // CPU per job accounts for shows up here: processes waiting on each other leave cores idle.
    ...(machineIdleShare !== undefined ? { machineIdleShare } : {}),
    // The drain on the monotonic clock V8 profiles use: node bench/profile-top.js --window.
    monotonicWindowUs: [window0, window1],
  };
}

module.exports = { timeDrain, unfinished, monotonicUs };
