// How an attempt is stopped (its timeout, or a cancellation) and the AbortSignal its handler sees.
// The signal is made only when something asks for it: most handlers never read ctx.signal and most
// attempts are never stopped, and an AbortController (an EventTarget with its own maps) is the
// costliest object an attempt would otherwise allocate.
import { CancelledError } from '@bullpen/core';

export class AttemptAbort {
  private controller: AbortController | undefined;
  private stopped = false;
  private why: unknown;
  private cancelledAfter: CancelledError | undefined;
  private listener: ((reason: unknown) => void) | undefined;

  get aborted(): boolean {
    return this.stopped;
  }

  /** What abort() was given; undefined until then. */
  get reason(): unknown {
    return this.why;
  }

  /** The attempt's AbortSignal, already aborted if the attempt has been stopped. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.stopped) this.controller.abort(this.why);
    }
    return this.controller.signal;
  }

  /**
   * A cancellation that came after the attempt had been stopped for another reason (its timeout,
   * while the handler has its grace to stop): the operator's intent still decides the outcome, so
   * that the job is not retried.
   */
  get cancelledLate(): CancelledError | undefined {
    return this.cancelledAfter;
  }

  /** Stops the attempt with `reason`; later calls only note a cancellation (cancelledLate). */
  abort(reason: unknown): void {
    if (this.stopped) {
      if (reason instanceof CancelledError && !(this.why instanceof CancelledError)) this.cancelledAfter ??= reason;
      return;
    }
    this.stopped = true;
    this.why = reason;
    this.controller?.abort(reason);
    const listener = this.listener;
    this.listener = undefined;
    listener?.(reason);
  }

  /** The one internal listener (the guard of the handler call), called once on abort; undefined
   * removes it. */
  onAbort(listener: ((reason: unknown) => void) | undefined): void {
    this.listener = listener;
  }
}
