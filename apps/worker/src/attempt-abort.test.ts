import { AttemptAbort } from './attempt-abort';

describe('AttemptAbort', () => {
  it('hands out a signal that is already aborted, with the reason, when asked for after the abort', () => {
    const abort = new AttemptAbort();
    const reason = new Error('stop');
    abort.abort(reason);
    expect(abort.aborted).toBe(true);
    expect(abort.signal.aborted).toBe(true);
    expect(abort.signal.reason).toBe(reason);
  });

  it('aborts a signal handed out earlier and calls its listener once', () => {
    const abort = new AttemptAbort();
    const signal = abort.signal;
    const listener = jest.fn();
    abort.onAbort(listener);
    abort.abort('first');
    abort.abort('second');
    expect(signal.aborted).toBe(true);
    expect(signal.reason).toBe('first');
    expect(listener).toHaveBeenCalledTimes(1);
    expect(listener).toHaveBeenCalledWith('first');
  });

  it('calls no listener that was removed', () => {
    const abort = new AttemptAbort();
    const listener = jest.fn();
    abort.onAbort(listener);
    abort.onAbort(undefined);
    abort.abort('x');
    expect(listener).not.toHaveBeenCalled();
  });
});
