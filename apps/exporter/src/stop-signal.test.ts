import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { stopSignal, Stopped } from './stop-signal';

/** A full garbage collection, which jest does not expose by default. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

describe('stopSignal', () => {
  it('passes a promise through until fired, then rejects every race, even with a promise that never settles', async () => {
    const signal = stopSignal();
    await expect(signal.race(Promise.resolve(7))).resolves.toBe(7);
    const never = signal.race(new Promise<number>(() => undefined));
    signal.fire();
    await expect(never).rejects.toBeInstanceOf(Stopped);
    await expect(signal.race(Promise.resolve(1))).resolves.toBe(1); // already settled wins the race
    await expect(signal.race(new Promise(() => undefined))).rejects.toBeInstanceOf(Stopped);
  });

  it('passes a rejection through unchanged', async () => {
    const err = new Error('redis away');
    await expect(stopSignal().race(Promise.reject(err))).rejects.toBe(err);
  });

  it('keeps nothing of a settled race while the signal waits unfired (the reader races every XREAD reply)', async () => {
    const signal = stopSignal();
    let reply: WeakRef<object> | undefined;
    await (async () => {
      const value = { entries: new Array(1000).fill('entry') };
      reply = new WeakRef(value);
      await signal.race(Promise.resolve(value));
    })();
    await new Promise((resolve) => setImmediate(resolve));
    collectGarbage();
    expect(reply?.deref()).toBeUndefined();
  });
});
