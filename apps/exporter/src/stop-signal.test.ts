import { stopSignal, Stopped } from './stop-signal';

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
});
