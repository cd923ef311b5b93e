// Runs one handler call under its attempt's AbortSignal, with a timeout that escalates.
//
// At timeoutMs the signal aborts with a TimeoutError. A cooperative handler stops and the attempt
// fails with that TimeoutError. A handler that ignores its signal is abandoned at
// timeoutMs × escalationFactor: the returned promise rejects so that the caller can free the
// handler's concurrency slot, and the handler's own promise is left to settle unobserved.
// A cancellation (cancelSignal) aborts the same way and gets the same grace before abandonment.
import { CancelledError, TimeoutError } from '@bullpen/core';

export type StopKind = 'timeout' | 'cancelled';

export interface GuardedRunOptions {
  timeoutMs: number;
  /** ≥ 1: the handler is abandoned at timeoutMs × this factor. */
  escalationFactor: number;
  /** Aborts the attempt from outside (a cancellation). */
  cancelSignal?: AbortSignal;
  /** Names the handler in error messages, e.g. `handler "sleep"`. */
  label: string;
  /** The soft stage: the signal has just been aborted because the attempt timed out. */
  onTimeout?: () => void;
  /** The hard stage: the handler ignored its aborted signal and has been abandoned. */
  onEscalated?: (kind: StopKind, afterMs: number) => void;
}

export function runGuarded<T>(run: (signal: AbortSignal) => T | Promise<T>, options: GuardedRunOptions): Promise<T> {
  const { timeoutMs, escalationFactor, cancelSignal, label } = options;
  const graceMs = Math.max(0, Math.round(timeoutMs * (escalationFactor - 1)));
  const startedAt = Date.now();

  if (cancelSignal?.aborted) return Promise.reject(cancelledError(cancelSignal.reason));

  return new Promise<T>((resolve, reject) => {
    const controller = new AbortController();
    let settled = false;
    let stopError: Error | undefined;
    let hardTimer: NodeJS.Timeout | undefined;

    const finish = (settle: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(softTimer);
      clearTimeout(hardTimer);
      cancelSignal?.removeEventListener('abort', onCancel);
      settle();
    };

    const stop = (error: Error, kind: StopKind) => {
      if (controller.signal.aborted) return;
      stopError = error;
      controller.abort(error);
      hardTimer = setTimeout(() => {
        finish(() => {
          const afterMs = Date.now() - startedAt;
          options.onEscalated?.(kind, afterMs);
          reject(
            kind === 'timeout'
              ? new TimeoutError(
                  `${label} ignored its abort signal and was still running at ${escalationFactor} × its ${timeoutMs} ms timeout; attempt failed after ${afterMs} ms`,
                )
              : new CancelledError(`${label} was cancelled and ignored its abort signal for ${graceMs} ms; attempt abandoned`),
          );
        });
      }, graceMs);
    };

    const onCancel = () => stop(cancelledError(cancelSignal?.reason), 'cancelled');
    const softTimer = setTimeout(() => {
      stop(new TimeoutError(`${label} timed out after ${timeoutMs} ms`), 'timeout');
      options.onTimeout?.();
    }, timeoutMs);
    cancelSignal?.addEventListener('abort', onCancel, { once: true });

    let pending: Promise<T>;
    try {
      pending = Promise.resolve(run(controller.signal));
    } catch (err) {
      pending = Promise.reject(err);
    }
    pending.then(
      (value) => finish(() => resolve(value)),
      // A handler that stops because its signal aborted usually throws an AbortError; the attempt
      // failed because of the timeout or cancellation, so that is what is reported.
      (err: unknown) => finish(() => reject(stopError ?? err)),
    );
  });
}

function cancelledError(reason: unknown): CancelledError {
  const detail = typeof reason === 'string' && reason !== '' ? `: ${reason}` : '';
  return new CancelledError(`job cancelled while active${detail}`);
}
