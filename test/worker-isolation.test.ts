// Isolated lanes run their handlers in worker threads, where a handler that ignores its aborted
// signal is really stopped (its thread terminated and replaced) at timeout × escalation factor; the
// same handler in process can only be abandoned, and keeps running until it stops by itself.
// The threads use the built worker (npx tsc -b apps/worker).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { redisUrl, waitUntil } from './support/wait';
import { FIXTURE_HANDLERS_DIR, REPO_ROOT, spawnWorker, writeLanesFile, type WorkerProcess } from './fixtures/worker-process';
import { startWorkerHarness, type WorkerHarness } from './fixtures/worker-harness';

const THREAD_MAIN = path.join(REPO_ROOT, 'apps/worker/dist/isolation/thread-main.js');

describe('isolated lanes', () => {
  let harness: WorkerHarness;
  beforeAll(async () => {
    if (!existsSync(THREAD_MAIN)) throw new Error(`${THREAD_MAIN} is missing: run npx tsc -b apps/worker first`);
    harness = await startWorkerHarness({
      lanesFile: {
        maxHandlersPerProcess: 8,
        lanes: {
          iso: { concurrency: 1, attempts: 1, isolated: true, timeoutMs: 30_000 },
          inproc: { concurrency: 1, attempts: 1, timeoutMs: 30_000 },
        },
      },
      env: { HANDLERS_DIR: FIXTURE_HANDLERS_DIR },
    });
  });
  afterAll(async () => {
    await harness.close();
  });

  async function completed(lane: string, id: string) {
    await harness.waitForEvent('job:completed', (e) => e.jobId === id, 20_000);
    return (await harness.queue(lane).getJob(id))!;
  }

  it('terminates the thread of a busy handler that ignores its signal, and runs the next job on a fresh thread in the same slot', async () => {
    const before = await completed('iso', await harness.add('iso', 'report_progress', { steps: 4 }));
    expect(before.returnvalue).toMatchObject({ isMainThread: false });
    expect(before.progress).toBe(100); // forwarded from the thread

    const timeoutMs = 400;
    const spinId = await harness.add('iso', 'cpu', { ms: 60_000, ignoreSignal: true }, { meta: { timeoutMs } });
    const dead = await harness.waitForEvent('job:dead', (e) => e.jobId === spinId);
    const escalated = await harness.waitForEvent('handler:timeout-escalated', (e) => e.jobId === spinId);
    const spin = (await harness.queue('iso').getJob(spinId))!;
    expect(escalated).toMatchObject({ isolated: true, terminated: true, cause: 'timeout' });
    expect(escalated.elapsedMs).toBeGreaterThanOrEqual(1.5 * timeoutMs - 5);
    expect(dead.errorClass).toBe('timeout');
    expect(spin.failedReason).toMatch(/handler "cpu" ignored its abort signal and was still running at 1.5 × its 400 ms timeout/);

    // The lane has one thread slot: the next job gets it, on a new thread, so the old one is gone.
    const after = await completed('iso', await harness.add('iso', 'report_progress', { steps: 1 }));
    expect(after.returnvalue).toMatchObject({ isMainThread: false });
    expect((after.returnvalue as { threadId: number }).threadId).not.toBe((before.returnvalue as { threadId: number }).threadId);
    expect(harness.runtime.stats()).toMatchObject({ isolatedThreads: 1, isolatedThreadsTerminatedTotal: 1, abandonedHandlersRunning: 0 });
  });

  it('does not fail the next job with an error a finished handler left behind, and replaces that thread', async () => {
    const before = await completed('iso', await harness.add('iso', 'report_progress', { steps: 1 }));
    const strayId = await harness.add('iso', 'stray', { afterMs: 50 });
    // Next on the lane's one thread, and running when the stray rejection comes.
    const innocentId = await harness.add('iso', 'sleep', { ms: 300 });
    await completed('iso', strayId);
    const innocent = await completed('iso', innocentId);
    expect(innocent.returnvalue).toEqual({ sleptMs: 300 });
    // The thread it happened in is not used again.
    const after = await completed('iso', await harness.add('iso', 'report_progress', { steps: 1 }));
    expect((after.returnvalue as { threadId: number }).threadId).not.toBe((before.returnvalue as { threadId: number }).threadId);
  });

  it('can only abandon the same handler in process: it keeps running after its slot is freed', async () => {
    const timeoutMs = 300;
    const spinMs = 1500;
    const spinId = await harness.add('inproc', 'cpu', { ms: spinMs, ignoreSignal: true }, { meta: { timeoutMs } });
    const escalated = await harness.waitForEvent('handler:timeout-escalated', (e) => e.jobId === spinId);
    expect(escalated).toMatchObject({ isolated: false, terminated: false, ignoredSignalTotal: 1 });
    // Abandoned, not stopped: the slot is free, the handler still spins.
    expect(harness.runtime.stats()).toMatchObject({ abandonedHandlersRunning: 1, activeHandlers: 0 });
    const noop = await completed('inproc', await harness.add('inproc', 'noop', {}));
    expect(noop.returnvalue).toEqual({ ok: true });
    expect(harness.runtime.stats().abandonedHandlersRunning).toBe(1);
    await waitUntil(() => harness.runtime.stats().abandonedHandlersRunning === 0, { timeoutMs: 10_000, what: 'the abandoned handler to stop' });
    expect(Date.now() - harness.events['job:started'].find((e) => e.jobId === spinId)!.startedAt).toBeGreaterThanOrEqual(spinMs - 50);
  });

  it('keeps the class of an error thrown in a thread, Retry-After included', async () => {
    const id = await harness.add('iso', 'fail', { kind: 'rate_limited', retryAfterMs: 1234, message: 'slow down' });
    const failed = await harness.waitForEvent('job:failed', (e) => e.jobId === id);
    expect(failed).toMatchObject({ errorClass: 'rate_limited', retryable: true, message: 'slow down' });
    const payloadError = await harness.add('iso', 'sleep', { ms: 'soon' });
    expect(await harness.waitForEvent('job:failed', (e) => e.jobId === payloadError)).toMatchObject({ errorClass: 'validation' });
  });
});

describe('console output of a handler in an isolated lane', () => {
  const lanes = { lanes: { iso: { concurrency: 1, attempts: 1, isolated: true, timeoutMs: 30_000 } } };
  const lanesFile = writeLanesFile(lanes);
  let harness: WorkerHarness;
  let worker: WorkerProcess;
  beforeAll(async () => {
    // The harness only adds jobs; the worker process runs them, as production does.
    harness = await startWorkerHarness({ lanesFile: lanes, start: false });
    worker = spawnWorker({ REDIS_URL: redisUrl(), BULLPEN_PREFIX: harness.config.prefix, LANES_FILE: lanesFile.file, HANDLERS_DIR: FIXTURE_HANDLERS_DIR });
    await worker.started();
  });
  afterAll(async () => {
    await worker?.stop();
    await harness?.close();
    lanesFile.cleanup();
  });

  it('comes out as JSON lines with source "console" and the job it came from, not as raw text on stderr', async () => {
    const id = await harness.add('iso', 'noisy', { word: 'from-the-thread' });
    const lines = () =>
      worker
        .stdout()
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l.source === 'console');
    const said = await waitUntil(() => lines().find((l) => String(l.msg).startsWith('noisy handler says')), {
      timeoutMs: 20_000,
      what: "the handler's console.error as a JSON line",
    });
    expect(said).toMatchObject({ level: 'error', msg: 'noisy handler says from-the-thread { n: 1 }', lane: 'iso', job_id: id, handler: 'noisy', attempt: 1 });
    expect(lines().find((l) => l.msg === 'noisy handler warns: from-the-thread')).toMatchObject({ level: 'warn', lane: 'iso', job_id: id });
    expect(worker.stderr()).not.toContain('noisy handler');
  });
});
