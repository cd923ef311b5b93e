// A counting semaphore with FIFO hand-off: a released slot goes straight to the longest waiter, so
// a burst of new arrivals cannot starve it, and at no instant are more than `capacity` slots held.

/** Gives the slot back; calling it more than once has no further effect. */
export type Release = () => void;

interface Waiter {
  grant(release: Release): void;
}

export class Semaphore {
  private held = 0;
  private readonly waiters: Waiter[] = [];

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
  }

  /** Slots held right now. */
  get inUse(): number {
    return this.held;
  }

  /** Callers waiting for a slot. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** A slot at once if one is free and nobody waits (no promise to make); undefined otherwise. */
  tryAcquire(): Release | undefined {
    if (this.held < this.capacity && this.waiters.length === 0) {
      this.held += 1;
      return this.releaser();
    }
    return undefined;
  }

  /**
   * Resolves with a release function once a slot is held. If `signal` aborts first, the caller
   * leaves the queue and the promise rejects with the signal's reason.
   */
  acquire(signal?: AbortSignal): Promise<Release> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.held < this.capacity && this.waiters.length === 0) {
      this.held += 1;
      return Promise.resolve(this.releaser());
    }
    return new Promise<Release>((resolve, reject) => {
      const onAbort = () => {
        const index = this.waiters.indexOf(waiter);
        if (index >= 0) this.waiters.splice(index, 1);
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        grant: (release) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(release);
        },
      };
      this.waiters.push(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  private releaser(): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiters.shift();
      // The slot passes to the next waiter without ever being free, so nobody can barge in between.
      if (next) next.grant(this.releaser());
      else this.held -= 1;
    };
  }
}
