import { CancelledError, TimeoutError } from '@bullpen/core';
import { AttemptAbort } from './attempt-abort';
import { cancelledError, runGuarded } from './timeout';
import { abortableSleep } from './handlers/sleep';

const base = { label: 'handler "t"', escalationFactor: 1.5 };

describe('runGuarded', () => {
  it('returns the handler result when it finishes in time', async () => {
    await expect(runGuarded(async () => 7, { ...base, timeoutMs: 1000 })).resolves.toBe(7);
  });

  it('aborts the signal at the timeout and reports a TimeoutError when the handler stops', async () => {
    const onTimeout = jest.fn();
    const onEscalated = jest.fn();
    const started = Date.now();
    const run = runGuarded((abort) => abortableSleep(10_000, abort.signal), { ...base, timeoutMs: 100, onTimeout, onEscalated });
    await expect(run).rejects.toThrow(TimeoutError);
    await expect(run).rejects.toThrow('handler "t" timed out after 100 ms');
    expect(Date.now() - started).toBeLessThan(140 + 100);
    expect(onTimeout).toHaveBeenCalledTimes(1);
    expect(onEscalated).not.toHaveBeenCalled();
  });

  it('abandons a handler that ignores its signal at timeout × escalation factor', async () => {
    const onEscalated = jest.fn();
    let finishIgnored!: () => void;
    const ignored = new Promise<void>((resolve) => {
      finishIgnored = resolve;
    });
    const started = Date.now();
    const run = runGuarded(() => ignored, { ...base, timeoutMs: 200, onEscalated });
    await expect(run).rejects.toThrow(/ignored its abort signal and was still running at 1.5 × its 200 ms timeout/);
    const elapsed = Date.now() - started;
    expect(elapsed).toBeGreaterThanOrEqual(295);
    expect(elapsed).toBeLessThan(600);
    expect(onEscalated).toHaveBeenCalledWith('timeout', expect.any(Number));
    finishIgnored();
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
