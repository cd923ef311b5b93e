// Stopping a loop whose Redis calls may never settle: ioredis leaves commands queued while it
// reconnects pending forever once the connection is closed, so the loop races them with a signal.

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
  let fire!: () => void;
  const fired = new Promise<never>((_, reject) => (fire = () => reject(new Stopped('exporter stopping'))));
  fired.catch(() => undefined);
  return {
    fire: () => fire(),
    race<T>(promise: Promise<T>): Promise<T> {
      promise.catch(() => undefined); // an abandoned command may reject later, unobserved
      return Promise.race([promise, fired]);
    },
  };
}
