// What the worker does with failures: unknown handlers, permanent and retryable errors with the
// lane's backoff, deadlines, timeouts with escalation, cancellation, and throwing listeners.
import { cancelChannel, createRedis } from '@bullpen/core';
import { defineHandler } from '../apps/worker/src/handler';
import { abortableSleep } from '../apps/worker/src/handlers/sleep';
import { deferred } from './support/wait';
import { startWorkerHarness, type WorkerHarness } from './fixtures/worker-harness';
import { standaloneUrl } from './support/config';
import { captureLogs } from './support/logs';

describe('worker failure handling', () => {
  let harness: WorkerHarness | undefined;
  afterEach(async () => {
    await harness?.close();
    harness = undefined;
  });

  it('fails a job whose name has no handler once, permanently, with a reason that says so', async () => {
    harness = await startWorkerHarness({ lanesFile: { lanes: { work: { concurrency: 2, attempts: 5 } } } });
    const id = await harness.add('work', 'no_such_job', { x: 1 });
    const dead = await harness.waitForEvent('job:dead', (e) => e.jobId === id);
    const job = await harness.queue('work').getJob(id);

    expect(job!.failedReason).toBe('no handler registered for job name "no_such_job" in lane "work"');
    expect(job!.attemptsMade).toBe(1);
    expect(await job!.getState()).toBe('failed');
    expect(dead).toMatchObject({ errorClass: 'unknown_handler', attemptsMade: 1 });
    expect(await harness.attemptRows('work', id)).toEqual([
      {
        type: 'attempt',
        attempt: 1,
        errorClass: 'unknown_handler',
        message: 'no handler registered for job name "no_such_job" in lane "work"',
        delayMs: null,
        worker: harness.config.workerId,
        ts: expect.any(Number),
      },
    ]);
    expect(harness.events['job:retrying']).toHaveLength(0);
  });

  it('does not retry a permanent error even when attempts remain', async () => {
    harness = await startWorkerHarness({ lanesFile: { lanes: { work: { concurrency: 1, attempts: 4 } } } });
    const id = await harness.add('work', 'fail', { kind: 'permanent', message: 'bad input' });
    await harness.waitForEvent('job:dead', (e) => e.jobId === id);
    const job = await harness.queue('work').getJob(id);

    expect(job!.attemptsMade).toBe(1);
    expect(job!.failedReason).toBe('bad input');
    expect(harness.events['job:started'].filter((e) => e.jobId === id)).toHaveLength(1);
  });

  it('fails a job whose result cannot be stored once, permanently, instead of running it again and again', async () => {
    let runs = 0;
    const cyclic = defineHandler({
      name: 'cyclic',
      run: () => {
        runs += 1;
        const result: Record<string, unknown> = { ok: true };
        result.self = result;
        return result;
      },
    });
    harness = await startWorkerHarness({
      handlers: [cyclic],
      lanesFile: { lanes: { work: { concurrency: 1, attempts: 3, backoff: { strategy: 'fixed', baseMs: 200, capMs: 200 } } } },
    });
    const id = await harness.add('work', 'cyclic', {});
    const dead = await harness.waitForEvent('job:dead', (e) => e.jobId === id);
    const job = await harness.queue('work').getJob(id);

    expect(runs).toBe(1);
    expect(await job!.getState()).toBe('failed');
    expect(job!.failedReason).toMatch(/^handler "cyclic" returned a value that cannot be stored as JSON/);
    expect(dead).toMatchObject({ errorClass: 'validation', attemptsMade: 1 });
    expect((await harness.attemptRows('work', id)).map((r) => [r.attempt, r.errorClass])).toEqual([[1, 'validation']]);
    expect(harness.events['job:dead'].filter((e) => e.jobId === id)).toHaveLength(1);
  });

  it('keeps a readable reason for an Error without a message and for a thrown value with a cycle', async () => {
    const bare = defineHandler({
      name: 'bare',
      run: () => {
        throw new Error('');
      },
    });
    const cyclic = defineHandler({
      name: 'cyclic_throw',
      run: () => {
        const thrown: Record<string, unknown> = { code: 'E_LOOP' };
        thrown.self = thrown;
        throw thrown;
      },
    });
    harness = await startWorkerHarness({ handlers: [bare, cyclic], lanesFile: { lanes: { work: { concurrency: 2, attempts: 1 } } } });
    const bareId = await harness.add('work', 'bare', {});
    const cyclicId = await harness.add('work', 'cyclic_throw', {});
    for (const id of [bareId, cyclicId]) await harness.waitForEvent('job:dead', (e) => e.jobId === id);

    expect((await harness.queue('work').getJob(bareId))!.failedReason).toBe('Error');
    const [row] = await harness.attemptRows('work', cyclicId);
    expect(row?.message).toMatch(/code: 'E_LOOP'/);
    expect((await harness.queue('work').getJob(cyclicId))!.failedReason).toBe(row?.message);
  });

  it('retries a retryable error up to the lane attempts, waiting the backoff between attempts', async () => {
    const baseMs = 300;
    harness = await startWorkerHarness({
      lanesFile: { lanes: { work: { concurrency: 1, attempts: 3, backoff: { strategy: 'linear', baseMs, capMs: 10_000 } } } },
    });
    const id = await harness.add('work', 'fail', { kind: 'retryable', message: 'flaky' });
    const dead = await harness.waitForEvent('job:dead', (e) => e.jobId === id);
    const job = await harness.queue('work').getJob(id);

    expect(dead).toMatchObject({ errorClass: 'handler', attemptsMade: 3 });
    expect(job!.attemptsMade).toBe(3);
    const rows = await harness.attemptRows('work', id);
    expect(rows.map((r) => [r.attempt, r.errorClass, r.delayMs])).toEqual([
      [1, 'handler', 300],
      [2, 'handler', 600],
      [3, 'handler', null],
    ]);
    const starts = harness.events['job:started'].filter((e) => e.jobId === id).map((e) => e.at);
    expect(starts).toHaveLength(3);
    // Each retry really waited its linear backoff (base × retry number).
    expect(starts[1]! - starts[0]!).toBeGreaterThanOrEqual(baseMs - 20);
    expect(starts[2]! - starts[1]!).toBeGreaterThanOrEqual(2 * baseMs - 20);
    expect(harness.events['job:retrying'].filter((e) => e.jobId === id).map((e) => [e.nextAttempt, e.delayMs])).toEqual([
      [2, 300],
      [3, 600],
    ]);
  });

  it('fails a job permanently with deadline_exceeded when its deadline has passed before an attempt starts', async () => {
    const ran = jest.fn();
    const late = defineHandler({ name: 'late', run: ran });
    harness = await startWorkerHarness({ lanesFile: { lanes: { work: { concurrency: 1, attempts: 3 } } }, handlers: [late] });
    const id = await harness.add('work', 'late', {}, { meta: { deadlineAt: Date.now() - 1 } });
    const dead = await harness.waitForEvent('job:dead', (e) => e.jobId === id);
    const job = await harness.queue('work').getJob(id);

    expect(job!.failedReason).toBe('deadline_exceeded');
    expect(job!.attemptsMade).toBe(1);
    expect(dead.errorClass).toBe('deadline_exceeded');
    expect(ran).not.toHaveBeenCalled();
  });

  it('stops a running attempt at the deadline, as a schedule-to-close timeout does, before its own timeout', async () => {
    let signal: AbortSignal | undefined;
    const slow = defineHandler({
      name: 'slow',
      run: (_payload, ctx) => {
        signal = ctx.signal;
        return abortableSleep(60_000, ctx.signal);
      },
    });
    harness = await startWorkerHarness({ lanesFile: { lanes: { work: { concurrency: 1, attempts: 3, timeoutMs: 60_000 } } }, handlers: [slow] });
    const id = await harness.add('work', 'slow', {}, { meta: { deadlineAt: Date.now() + 300 } });
    const dead = await harness.waitForEvent('job:dead', (e) => e.jobId === id);
    const job = await harness.queue('work').getJob(id);

    expect(signal?.aborted).toBe(true);
    expect(job!.failedReason).toBe("deadline_exceeded: the job's deadline passed while attempt 1 ran");
    expect(job!.attemptsMade).toBe(1);
    expect(dead).toMatchObject({ errorClass: 'deadline_exceeded', reason: 'deadline_exceeded' });
    const [row] = await harness.attemptRows('work', id);
    expect(row).toMatchObject({ attempt: 1, errorClass: 'deadline_exceeded', message: "deadline_exceeded: the job's deadline passed while attempt 1 ran" });
  });

  it('fails a handler that ignores its AbortSignal with a TimeoutError at about 1.5 × timeout and reuses its slot', async () => {
    const release = deferred<void>();
    const stubbornStarted = deferred<void>();
    const stubborn = defineHandler({
      name: 'stubborn',
      run: async () => {
        stubbornStarted.resolve();
        await release.promise; // ignores ctx.signal on purpose
        return 'too late';
      },
    });
    harness = await startWorkerHarness({
      // One slot in the whole process: the noop job can only run once the stubborn one's slot is freed.
      lanesFile: { maxHandlersPerProcess: 1, lanes: { work: { concurrency: 2, attempts: 1, timeoutMs: 30_000 } } },
      handlers: [stubborn],
    });
    const timeoutMs = 400;
    const id = await harness.add('work', 'stubborn', {}, { meta: { timeoutMs } });
    await stubbornStarted.promise;
    const noopId = await harness.add('work', 'noop', {});

    const dead = await harness.waitForEvent('job:dead', (e) => e.jobId === id);
    const warning = await harness.waitForEvent('handler:timeout-warning', (e) => e.jobId === id);
    const escalated = await harness.waitForEvent('handler:timeout-escalated', (e) => e.jobId === id);
    const noopDone = await harness.waitForEvent('job:completed', (e) => e.jobId === noopId);
    const job = await harness.queue('work').getJob(id);

    expect(warning.timeoutMs).toBe(timeoutMs);
    expect(warning.elapsedMs).toBeGreaterThanOrEqual(timeoutMs - 5);
    expect(escalated).toMatchObject({ cause: 'timeout', ignoredSignalTotal: 1 });
    expect(escalated.elapsedMs).toBeGreaterThanOrEqual(1.5 * timeoutMs - 5);
    // Well short of the lane's 30 s timeout: the job's own 400 ms governed. (A tighter bound would
    // time the machine: a loaded CI runner has fired timers close to a second late.)
    expect(escalated.elapsedMs).toBeLessThan(10_000);
    expect(dead.errorClass).toBe('timeout');
    expect(job!.failedReason).toMatch(/handler "stubborn" ignored its abort signal and was still running at 1.5 × its 400 ms timeout/);
    expect(await harness.attemptRows('work', id)).toEqual([expect.objectContaining({ errorClass: 'timeout' })]);
    // The noop job got the only slot once the stubborn one was abandoned, while it still ran: the
    // process leased it only then, having no slot for it before.
    const noopStarted = await harness.waitForEvent('job:started', (e) => e.jobId === noopId);
    expect(noopStarted.at).toBeGreaterThanOrEqual(escalated.at);
    expect(noopDone.at).toBeGreaterThanOrEqual(escalated.at);
    expect(harness.runtime.stats()).toMatchObject({ ignoredSignalTotal: 1, activeHandlers: 0 });
    release.resolve();
  });

  it('retries a cooperative handler that stops at its timeout with a TimeoutError', async () => {
    harness = await startWorkerHarness({
      lanesFile: { lanes: { work: { concurrency: 1, attempts: 2, timeoutMs: 200, backoff: { strategy: 'fixed', baseMs: 10 } } } },
    });
    const id = await harness.add('work', 'sleep', { ms: 60_000 });
    const dead = await harness.waitForEvent('job:dead', (e) => e.jobId === id);
    const job = await harness.queue('work').getJob(id);

    expect(dead).toMatchObject({ errorClass: 'timeout', attemptsMade: 2 });
    expect(job!.failedReason).toBe('handler "sleep" timed out after 200 ms');
    expect(harness.events['handler:timeout-escalated']).toHaveLength(0);
  });

  it('aborts an active job when a cancel message for it arrives on the cancel channel, and does not retry it', async () => {
    const running = deferred<void>();
    const sawAbort = deferred<unknown>();
    const waiter = defineHandler({
      name: 'waiter',
      run: async (_data, { signal }) => {
        running.resolve();
        signal.addEventListener('abort', () => sawAbort.resolve(signal.reason), { once: true });
        await abortableSleep(60_000, signal);
      },
    });
    harness = await startWorkerHarness({ lanesFile: { lanes: { work: { concurrency: 1, attempts: 3 } } }, handlers: [waiter] });
    const id = await harness.add('work', 'waiter', {});
    await running.promise;

    const publisher = createRedis(standaloneUrl(harness.config), 'worker');
    try {
      await publisher.publish(cancelChannel(harness.config.prefix), JSON.stringify({ lane: 'work', jobId: id }));
    } finally {
      await publisher.quit();
    }
    const reason = await sawAbort.promise;
    const dead = await harness.waitForEvent('job:dead', (e) => e.jobId === id);
    const job = await harness.queue('work').getJob(id);

    expect(reason).toMatchObject({ name: 'CancelledError' });
    expect(dead.errorClass).toBe('cancelled');
    expect(job!.attemptsMade).toBe(1);
    expect(job!.failedReason).toBe('job cancelled while active: cancel requested');
    expect(await job!.getState()).toBe('failed');
    expect(await harness.attemptRows('work', id)).toEqual([expect.objectContaining({ errorClass: 'cancelled', delayMs: null })]);
  });

  describe('a cooperative handler that returns what it has once its signal aborts', () => {
    /** Counts until its signal aborts, then returns the count, as a batch job handing back partial work would. */
    function counter(started: { resolve(): void }) {
      return defineHandler({
        name: 'counter',
        run: async (_data, ctx) => {
          started.resolve();
          let n = 0;
          while (!ctx.signal.aborted) {
            n += 1;
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
          return { n };
        },
      });
    }

    it('fails a cancelled job as cancelled, not completed with the partial result', async () => {
      const started = deferred<void>();
      harness = await startWorkerHarness({ lanesFile: { lanes: { work: { concurrency: 1, attempts: 3 } } }, handlers: [counter(started)] });
      const id = await harness.add('work', 'counter', {});
      await started.promise;

      const publisher = createRedis(standaloneUrl(harness.config), 'worker');
      try {
        await publisher.publish(cancelChannel(harness.config.prefix), JSON.stringify({ lane: 'work', jobId: id }));
      } finally {
        await publisher.quit();
      }
      const dead = await harness.waitForEvent('job:dead', (e) => e.jobId === id);
      const job = (await harness.queue('work').getJob(id))!;

      expect(dead.errorClass).toBe('cancelled');
      expect(await job.getState()).toBe('failed');
      expect(job.returnvalue).toBeNull();
      expect(job.attemptsMade).toBe(1);
      expect(job.failedReason).toBe('job cancelled while active: cancel requested');
      expect(harness.events['job:completed'].filter((e) => e.jobId === id)).toEqual([]);
    });

    it('fails a timed-out attempt with its TimeoutError and retries it, rather than completing it', async () => {
      const started = deferred<void>();
      harness = await startWorkerHarness({
        lanesFile: { lanes: { work: { concurrency: 1, attempts: 2, timeoutMs: 200, backoff: { strategy: 'fixed', baseMs: 10 } } } },
        handlers: [counter(started)],
      });
      const id = await harness.add('work', 'counter', {});
      const dead = await harness.waitForEvent('job:dead', (e) => e.jobId === id);
      const job = (await harness.queue('work').getJob(id))!;

      expect(dead).toMatchObject({ errorClass: 'timeout', attemptsMade: 2 });
      expect(job.failedReason).toBe('handler "counter" timed out after 200 ms');
      expect((await harness.attemptRows('work', id)).map((r) => [r.attempt, r.errorClass])).toEqual([
        [1, 'timeout'],
        [2, 'timeout'],
      ]);
      expect(harness.events['job:completed'].filter((e) => e.jobId === id)).toEqual([]);
    });
  });

  it('keeps running jobs when a lifecycle listener throws', async () => {
    harness = await startWorkerHarness({ lanesFile: { lanes: { work: { concurrency: 1 } } } });
    const logged = captureLogs(harness.logger);
    harness.runtime.on('job:started', () => {
      throw new Error('listener bug');
    });
    harness.runtime.on('job:completed', async () => {
      throw new Error('async listener bug');
    });
    const first = await harness.add('work', 'noop', {});
    const second = await harness.add('work', 'noop', {});
    await harness.waitForEvent('job:completed', (e) => e.jobId === second);

    expect(await harness.queue('work').getJobState(first)).toBe('completed');
    expect(await harness.queue('work').getJobState(second)).toBe('completed');
    expect(logged).toContainEqual(expect.objectContaining({ msg: 'a worker event listener threw', event: 'job:started', error: 'listener bug' }));
    expect(logged).toContainEqual(
      expect.objectContaining({ msg: 'a worker event listener threw', event: 'job:completed', error: 'async listener bug' }),
    );
  });
});
