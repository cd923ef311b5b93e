// Stopping a loop whose Redis calls may never settle: ioredis leaves commands queued while it
// reconnects pending forever once the connection is closed, so the loop races them with a signal.
//
// Not Promise.race against one long-lived promise: each race would leave a reaction on it that
// holds the race's result (here every XREAD reply) until the signal fires, which in a running
// exporter is never; its RSS grew by hundreds of MB per 100,000 jobs. Each race instead registers
// its rejecter and removes it as soon as its own promise settles.

export interface StopSignal {
  fire(): void;
  /** The promise's outcome, or a Stopped rejection once the signal has fired. */
  race<T>(promise: Promise<T>): Promise<T>;
}

export class Stopped extends Error {
  override readonly name = 'Stopped';
}

/** A one-shot signal that makes raced promises reject with Stopped once fired. */
export function stopSignal(): StopSignal {
  let fired = false;
  const waiting = new Set<(err: Stopped) => void>();
  return {
    fire: () => {
      if (fired) return;
      fired = true;
      for (const reject of waiting) reject(new Stopped('exporter stopping'));
      waiting.clear();
    },
    race<T>(promise: Promise<T>): Promise<T> {
      promise.catch(() => undefined); // an abandoned command may reject later, unobserved
      return new Promise<T>((resolve, reject) => {
        promise.then(
          (value) => {
            waiting.delete(reject);
            resolve(value);
          },
          (err: unknown) => {
            waiting.delete(reject);
            reject(err);
          },
        );
        // After the promise's own reaction, so that one already settled still wins, as with Promise.race.
        if (fired) queueMicrotask(() => reject(new Stopped('exporter stopping')));
        else waiting.add(reject);
      });
    },
  };
}
