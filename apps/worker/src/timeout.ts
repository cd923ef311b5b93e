// Runs one handler call under its attempt's AbortSignal, with a timeout that escalates.
//
// At timeoutMs the signal aborts with a TimeoutError. A cooperative handler stops and the attempt
// fails with that TimeoutError, whether the handler throws or returns. A handler that ignores its signal is abandoned at
// timeoutMs × escalationFactor: the returned promise rejects so that the caller can free the
// handler's concurrency slot, and the handler's own promise is left to settle unobserved.
// A cancellation (the attempt's AttemptAbort aborted from outside) aborts the same way and gets the
// same grace before abandonment.
import { CancelledError, MAX_TIMER_MS, TimeoutError } from '@bullpen/core';
import { AttemptAbort } from './attempt-abort';
import { elapsedMs } from './elapsed';

export type StopKind = 'timeout' | 'cancelled';

export interface GuardedRunOptions {
  timeoutMs: number;
  /** ≥ 1: the handler is abandoned at timeoutMs × this factor. */
  escalationFactor: number;
  /** The attempt's abort: aborted from outside, it cancels the call; the timeout aborts it here.
   * Default: one of the call's own. */
  abort?: AttemptAbort;
  /** Names the handler in error messages, e.g. `handler "sleep"`. */
  label: string;
  /** The soft stage: the signal has just been aborted because the attempt timed out. */
  onTimeout?: () => void;
  /** The hard stage: the handler ignored its aborted signal and has been abandoned. */
  onEscalated?: (kind: StopKind, afterMs: number) => void;
}

export function runGuarded<T>(run: (abort: AttemptAbort) => T | Promise<T>, options: GuardedRunOptions): Promise<T> {
  const { timeoutMs, escalationFactor, label } = options;
  const abort = options.abort ?? new AttemptAbort();
  // Node fires a timer past MAX_TIMER_MS at once; a timeout that long (from a job stored by an
  // older API or another BullMQ client) waits the longest timer Node keeps instead.
  const graceMs = Math.min(MAX_TIMER_MS, Math.max(0, Math.round(timeoutMs * (escalationFactor - 1))));
  const startedAt = performance.now();

  if (abort.aborted) return Promise.reject(asCancelled(abort.reason));

  return new Promise<T>((resolve, reject) => {
    let settled = false;
    let stopError: Error | undefined;
    let hardTimer: NodeJS.Timeout | undefined;

    /** True for the first caller only, who then settles the promise. */
    const finish = (): boolean => {
      if (settled) return false;
      settled = true;
      clearTimeout(softTimer);
      clearTimeout(hardTimer);
      abort.onAbort(undefined);
      return true;
    };

    const stop = (error: Error, kind: StopKind) => {
      if (stopError) return;
      stopError = error;
      abort.abort(error);
      hardTimer = setTimeout(() => {
        if (!finish()) return;
        const afterMs = elapsedMs(startedAt);
        options.onEscalated?.(kind, afterMs);
        const failure =
          kind === 'timeout'
            ? new TimeoutError(
                `${label} ignored its abort signal and was still running at ${escalationFactor} × its ${timeoutMs} ms timeout; attempt failed after ${afterMs} ms`,
              )
            : new CancelledError(`${label} was cancelled and ignored its abort signal for ${graceMs} ms; attempt abandoned`);
        reject(abort.cancelledLate ?? failure);
      }, graceMs);
    };

    // Called for a cancellation, and for the timeout's own abort (which stop() has already handled).
    abort.onAbort((reason) => {
      if (!stopError) stop(asCancelled(reason), 'cancelled');
    });
    const softTimer = setTimeout(() => {
      stop(new TimeoutError(`${label} timed out after ${timeoutMs} ms`), 'timeout');
      options.onTimeout?.();
    }, Math.min(timeoutMs, MAX_TIMER_MS));

    let pending: Promise<T>;
    try {
      pending = Promise.resolve(run(abort));
    } catch (err) {
      pending = Promise.reject(err);
    }
    pending.then(
      // A cooperative handler may stop by returning what it has so far rather than by throwing:
      // once the attempt was stopped that value is not the job's result, or a cancelled job would
      // complete and a timed-out one would never be retried. The stop reason ends the attempt.
      (value) => {
        if (!finish()) return;
        if (stopError) reject(abort.cancelledLate ?? stopError);
        else resolve(value);
      },
      // A handler that stops because its signal aborted usually throws an AbortError; the attempt
      // failed because of the timeout or cancellation, so that is what is reported.
      (err: unknown) => {
        if (finish()) reject(abort.cancelledLate ?? stopError ?? err);
      },
    );
  });
}

/** The error a cancellation fails the attempt with; `reason` is the canceller's (a string or none). */
export function cancelledError(reason: unknown): CancelledError {
  const detail = typeof reason === 'string' && reason !== '' ? `: ${reason}` : '';
  return new CancelledError(`job cancelled while active${detail}`);
}

function asCancelled(reason: unknown): Error {
  return reason instanceof Error ? reason : cancelledError(reason);
}
