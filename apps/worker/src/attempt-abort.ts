// How an attempt is stopped (its timeout, or a cancellation) and the AbortSignal its handler sees.
// The signal is made only when something asks for it: most handlers never read ctx.signal and most
// attempts are never stopped, and an AbortController (an EventTarget with its own maps) is the
// costliest object an attempt would otherwise allocate.

export class AttemptAbort {
  private controller: AbortController | undefined;
  private stopped = false;
  private why: unknown;
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

  /** Stops the attempt with `reason`; later calls do nothing. */
  abort(reason: unknown): void {
    if (this.stopped) return;
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
