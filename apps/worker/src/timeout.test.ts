import { CancelledError, TimeoutError } from '@bullpen/core';
import { AttemptAbort } from './attempt-abort';
import { cancelledError, runGuarded } from './timeout';
import { abortableSleep } from './handlers/sleep';

const base = { label: 'handler "t"', escalationFactor: 1.5 };

describe('runGuarded', () => {
  it('returns the handler result when it finishes in time', async () => {
    await expect(runGuarded(async () => 7, { ...base, timeoutMs: 1000 })).resolves.toBe(7);
  });

  it('lets a handler run under a timeout longer than the longest timer Node keeps', async () => {
    // Node fires a setTimeout past 2^31 - 1 ms after 1 ms: unbounded, this attempt would time out
    // at once. The handler's own wait stands for any work that takes more than that millisecond.
    const timeoutMs = 3_000_000_000;
    const run = runGuarded((abort) => abortableSleep(50, abort.signal).then(() => 'done'), { ...base, escalationFactor: 10, timeoutMs });
    await expect(run).resolves.toBe('done');
  });

  // The two stages are checked on Jest's clock rather than the wall clock: a loaded CI machine can
  // run a timer hundreds of milliseconds late, and what matters is which stage fires at which point.
  describe('on a fake clock', () => {
    beforeEach(() => jest.useFakeTimers());
    afterEach(() => jest.useRealTimers());

    /** Resolves with the promise's outcome so far without letting any timer run. */
    async function peek<T>(promise: Promise<T>): Promise<'pending' | 'resolved' | 'rejected'> {
      let state: 'pending' | 'resolved' | 'rejected' = 'pending';
      promise.then(
        () => (state = 'resolved'),
        () => (state = 'rejected'),
      );
      for (let i = 0; i < 5; i++) await Promise.resolve();
      return state;
    }

    it('aborts the signal at the timeout and reports a TimeoutError when the handler stops', async () => {
      const onTimeout = jest.fn();
      const onEscalated = jest.fn();
      const run = runGuarded((abort) => abortableSleep(10_000, abort.signal), { ...base, timeoutMs: 100, onTimeout, onEscalated });
      run.catch(() => undefined);

      await jest.advanceTimersByTimeAsync(99);
      expect(onTimeout).not.toHaveBeenCalled();
      expect(await peek(run)).toBe('pending');

      await jest.advanceTimersByTimeAsync(1);
      expect(onTimeout).toHaveBeenCalledTimes(1);
      expect(await peek(run)).toBe('rejected');
      await expect(run).rejects.toThrow(TimeoutError);
      await expect(run).rejects.toThrow('handler "t" timed out after 100 ms');

      await jest.advanceTimersByTimeAsync(1000);
      expect(onEscalated).not.toHaveBeenCalled();
    });

    it('abandons a handler that ignores its signal at timeout × escalation factor', async () => {
      const onTimeout = jest.fn();
      const onEscalated = jest.fn();
      let seen: AbortSignal | undefined;
      const ignored = new Promise<void>(() => undefined);
      const run = runGuarded(
        (abort) => {
          seen = abort.signal;
          return ignored;
        },
        { ...base, timeoutMs: 200, onTimeout, onEscalated },
      );
      run.catch(() => undefined);

      await jest.advanceTimersByTimeAsync(200);
      expect(onTimeout).toHaveBeenCalledTimes(1);
      expect(seen!.aborted).toBe(true);
      expect(seen!.reason).toBeInstanceOf(TimeoutError);
      expect(await peek(run)).toBe('pending');

      await jest.advanceTimersByTimeAsync(99);
      expect(onEscalated).not.toHaveBeenCalled();
      expect(await peek(run)).toBe('pending');

      await jest.advanceTimersByTimeAsync(1);
      expect(onEscalated).toHaveBeenCalledWith('timeout', 300);
      await expect(run).rejects.toThrow(TimeoutError);
      await expect(run).rejects.toThrow(
        'handler "t" ignored its abort signal and was still running at 1.5 × its 200 ms timeout; attempt failed after 300 ms',
      );
    });
    it('reports a cancellation that comes during the grace after a timeout as the outcome, so the job is not retried', async () => {
      // Once for a handler that stops late, once for one that ignores its signal to the end.
      for (const ignores of [false, true]) {
        const abort = new AttemptAbort();
        let stopLate: (() => void) | undefined;
        const run = runGuarded(
          () =>
            new Promise<void>((_, reject) => {
              if (!ignores) stopLate = () => reject(new Error('AbortError'));
            }),
          { ...base, timeoutMs: 200, abort },
        );
        run.catch(() => undefined);
        await jest.advanceTimersByTimeAsync(200); // timed out: the grace runs until 300 ms
        abort.abort(cancelledError('operator'));
        if (stopLate) stopLate();
        else await jest.advanceTimersByTimeAsync(100);
        await expect(run).rejects.toThrow(CancelledError);
        await expect(run).rejects.toThrow('job cancelled while active: operator');
      }
    });
  });

  it('fails an attempt whose handler returns a value after its timeout, with the TimeoutError', async () => {
    const run = runGuarded(
      async (abort) => {
        await new Promise((resolve) => abort.signal.addEventListener('abort', resolve, { once: true }));
        return { partial: true };
      },
      { ...base, timeoutMs: 50 },
    );
    await expect(run).rejects.toThrow(TimeoutError);
    await expect(run).rejects.toThrow('handler "t" timed out after 50 ms');
  });

  it('fails a cancelled attempt whose handler returns a value once its signal aborts, with the CancelledError', async () => {
    const abort = new AttemptAbort();
    const run = runGuarded(
      async (a) => {
        await new Promise((resolve) => a.signal.addEventListener('abort', resolve, { once: true }));
        return { partial: true };
      },
      { ...base, timeoutMs: 10_000, abort },
    );
    abort.abort(cancelledError('cancel requested'));
    await expect(run).rejects.toThrow(CancelledError);
    await expect(run).rejects.toThrow('job cancelled while active: cancel requested');
  });

  it('aborts with a CancelledError when the attempt is cancelled', async () => {
    const abort = new AttemptAbort();
    const run = runGuarded((a) => abortableSleep(10_000, a.signal), { ...base, timeoutMs: 10_000, abort });
    abort.abort(cancelledError('cancel requested'));
    await expect(run).rejects.toThrow(CancelledError);
    await expect(run).rejects.toThrow('job cancelled while active: cancel requested');
  });

  it('does not start a handler whose job is already cancelled', async () => {
    const abort = new AttemptAbort();
    abort.abort(cancelledError(undefined));
    const run = jest.fn();
    await expect(runGuarded(run, { ...base, timeoutMs: 100, abort })).rejects.toThrow(CancelledError);
    expect(run).not.toHaveBeenCalled();
  });

  it('turns a synchronous throw into a rejection', async () => {
    await expect(
      runGuarded(() => {
        throw new Error('boom');
      }, { ...base, timeoutMs: 100 }),
    ).rejects.toThrow('boom');
  });
});
