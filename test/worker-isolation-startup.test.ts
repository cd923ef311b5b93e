// Starting a handler thread of an isolated lane (loading bullpen, the handlers and tracing) takes
// seconds on a busy machine. That time is not the handler's: an attempt's timeout, and its
// escalation, measure the handler's run only, so a timeout shorter than a thread's start-up can be
// met. The start-up is bounded on its own (the lane's threadStartTimeoutMs), and by the job's
// deadline. The handler folders here make start-up slow, or endless, in threads only, so that the
// outcomes do not depend on the machine's speed. The threads use the built worker
// (npx tsc -b apps/worker).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { cancelChannel } from '@bullpen/core';
import { REPO_ROOT } from './fixtures/worker-process';
import { startWorkerHarness, type WorkerHarness } from './fixtures/worker-harness';
import { waitUntil } from './support/wait';

const THREAD_MAIN = path.join(REPO_ROOT, 'apps/worker/dist/isolation/thread-main.js');
/** Loaded in a thread, its file sleeps 5 s before the thread is ready. */
const SLOW_START_HANDLERS_DIR = path.join(REPO_ROOT, 'test/fixtures/slow-start-handlers');
/** Loaded in a thread, its file never finishes loading. */
const STUCK_START_HANDLERS_DIR = path.join(REPO_ROOT, 'test/fixtures/stuck-start-handlers');

beforeAll(() => {
  if (!existsSync(THREAD_MAIN)) throw new Error(`${THREAD_MAIN} is missing: run npx tsc -b apps/worker first`);
});

/** How a job ended: its completion (with the attempt's timings), or its failure's class and reason. */
function ended(harness: WorkerHarness, lane: string, jobId: string) {
  const of = (e: { lane: string; jobId: string }) => e.lane === lane && e.jobId === jobId;
  return waitUntil(
    () => {
      const completed = harness.events['job:completed'].find(of);
      if (completed) return { outcome: 'completed' as const, durationMs: completed.durationMs };
      const dead = harness.events['job:dead'].find(of);
      return dead && { outcome: 'dead' as const, errorClass: dead.errorClass, message: dead.message };
    },
    { timeoutMs: 30_000, what: `job ${jobId} of lane ${lane} to end` },
  );
}

describe('an isolated lane whose threads take longer to start than its timeout', () => {
  const timeoutMs = 1000;
  let harness: WorkerHarness;
  let firstId: string;
  beforeAll(async () => {
    harness = await startWorkerHarness({
      lanesFile: { lanes: { iso: { concurrency: 1, attempts: 1, isolated: true, timeoutMs } } },
      env: { HANDLERS_DIR: SLOW_START_HANDLERS_DIR },
      start: false,
    });
    // Waiting before the worker starts: its attempt begins while the lane's thread is starting.
    firstId = await harness.add('iso', 'noop', {});
    await harness.runtime.start();
  });
  afterAll(async () => {
    await harness.close();
  });

  it('runs the first job within its timeout: the timeout starts once the thread is ready', async () => {
    const first = await ended(harness, 'iso', firstId);
    expect(first).toMatchObject({ outcome: 'completed' });
    expect((await harness.queue('iso').getJob(firstId))!.returnvalue).toEqual({ ok: true });
    // The attempt did wait for the thread, longer than its timeout and its escalation...
    expect(first.outcome === 'completed' && first.durationMs).toBeGreaterThanOrEqual(1.5 * timeoutMs);
    // ...and none of it was the handler's.
    expect(harness.events['handler:timeout-warning'].filter((e) => e.lane === 'iso' && e.jobId === firstId)).toEqual([]);
  });

  it('stops a handler that ignores its signal at its own timeout, and runs the next job on the slow-starting successor thread within its timeout', async () => {
    const spinTimeoutMs = 400;
    const spinId = await harness.add('iso', 'cpu', { ms: 60_000, ignoreSignal: true }, { meta: { timeoutMs: spinTimeoutMs } });
    expect(await ended(harness, 'iso', spinId)).toMatchObject({
      outcome: 'dead',
      errorClass: 'timeout',
      message: expect.stringMatching(/handler "cpu" ignored its abort signal and was still running at 1.5 × its 400 ms timeout/),
    });
    expect(await harness.waitForEvent('handler:timeout-escalated', (e) => e.lane === 'iso' && e.jobId === spinId)).toMatchObject({ terminated: true });

    // The terminated thread's successor takes seconds to start; the job waits for it, untimed.
    const nextId = await harness.add('iso', 'noop', {});
    expect(await ended(harness, 'iso', nextId)).toMatchObject({ outcome: 'completed' });
    expect((await harness.queue('iso').getJob(nextId))!.returnvalue).toEqual({ ok: true });
    expect(harness.events['handler:timeout-warning'].filter((e) => e.lane === 'iso' && e.jobId === nextId)).toEqual([]);
    expect(harness.runtime.stats()).toMatchObject({ isolatedThreads: 1, isolatedThreadsTerminatedTotal: 1 });
  });
});

describe('an isolated lane whose threads never become ready', () => {
  let harness: WorkerHarness;
  beforeAll(async () => {
    harness = await startWorkerHarness({
      lanesFile: {
        lanes: {
          stuck: { concurrency: 1, attempts: 1, isolated: true, timeoutMs: 1000, threadStartTimeoutMs: 1500 },
          // The default start-up bound (a minute), but a deadline 2 s after enqueue.
          late: { concurrency: 1, attempts: 1, isolated: true, timeoutMs: 1000, deadlineMs: 2000 },
          // Neither: its attempts wait for a thread until something stops them.
          held: { concurrency: 1, attempts: 1, isolated: true, timeoutMs: 1000 },
        },
      },
      env: { HANDLERS_DIR: STUCK_START_HANDLERS_DIR },
    });
  });
  afterAll(async () => {
    await harness.close();
  });

  it("fails the waiting attempt as thread_start at the lane's threadStartTimeoutMs, not as the handler's timeout", async () => {
    const id = await harness.add('stuck', 'noop', {});
    const dead = await ended(harness, 'stuck', id);
    expect(dead).toMatchObject({
      outcome: 'dead',
      errorClass: 'thread_start',
      message: expect.stringMatching(/^lane stuck: a handler thread was not ready 1500 ms after it started/),
    });
    expect(harness.events['handler:timeout-warning'].filter((e) => e.lane === 'stuck' && e.jobId === id)).toEqual([]);
    expect(harness.events['handler:timeout-escalated'].filter((e) => e.lane === 'stuck' && e.jobId === id)).toEqual([]);
  });

  it("fails the waiting attempt at the job's deadline, which bounds the thread's start-up too", async () => {
    const id = await harness.add('late', 'noop', {});
    expect(await ended(harness, 'late', id)).toMatchObject({
      outcome: 'dead',
      errorClass: 'deadline_exceeded',
      message: expect.stringMatching(/deadline passed while attempt 1 waited for a handler thread to start/),
    });
  });

  it('fails an attempt cancelled while it waits for its thread as cancelled, saying what it was waiting for', async () => {
    const id = await harness.add('held', 'noop', {});
    // From its start to its wait for a thread, the attempt does not yield: once started, it waits.
    await harness.waitForEvent('job:started', (e) => e.lane === 'held' && e.jobId === id);
    await harness.redis.publish(cancelChannel(harness.config.prefix), JSON.stringify({ lane: 'held', jobId: id }));
    expect(await ended(harness, 'held', id)).toMatchObject({
      outcome: 'dead',
      errorClass: 'cancelled',
      message: expect.stringMatching(/job cancelled while active.*\(it was waiting for a handler thread to start\)/),
    });
  });
});
