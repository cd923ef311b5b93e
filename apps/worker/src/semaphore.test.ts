import { Semaphore } from './semaphore';

describe('Semaphore', () => {
  it('never has more than its capacity held while many callers contend', async () => {
    const semaphore = new Semaphore(3);
    let current = 0;
    let max = 0;
    await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        const release = await semaphore.acquire();
        current += 1;
        max = Math.max(max, current);
        await new Promise((r) => setImmediate(r));
        if (i % 2) await new Promise((r) => setImmediate(r));
        current -= 1;
        release();
      }),
    );
    expect(max).toBe(3);
    expect(semaphore.inUse).toBe(0);
  });

  it('hands a released slot to the longest waiter first', async () => {
    const semaphore = new Semaphore(1);
    const first = await semaphore.acquire();
    const order: string[] = [];
    const a = semaphore.acquire().then((release) => {
      order.push('a');
      release();
    });
    const b = semaphore.acquire().then((release) => {
      order.push('b');
      release();
    });
    expect(semaphore.waiting).toBe(2);
    first();
    await Promise.all([a, b]);
    expect(order).toEqual(['a', 'b']);
  });

  it('ignores a second release of the same slot', async () => {
    const semaphore = new Semaphore(1);
    const release = await semaphore.acquire();
    release();
    release();
    expect(semaphore.inUse).toBe(0);
    await semaphore.acquire();
    expect(semaphore.inUse).toBe(1);
  });

  it('removes an aborted waiter from the queue and rejects with the abort reason', async () => {
    const semaphore = new Semaphore(1);
    const held = await semaphore.acquire();
    const controller = new AbortController();
    const waiting = semaphore.acquire(controller.signal);
    controller.abort(new Error('gone'));
    await expect(waiting).rejects.toThrow('gone');
    expect(semaphore.waiting).toBe(0);
    held();
    expect(semaphore.inUse).toBe(0);
  });

  it('rejects a capacity below one', () => {
    expect(() => new Semaphore(0)).toThrow(RangeError);
  });

  it('takes a free slot at once with tryAcquire, and none when a waiter is queued', async () => {
    const semaphore = new Semaphore(1);
    const first = semaphore.tryAcquire();
    expect(first).toBeDefined();
    expect(semaphore.tryAcquire()).toBeUndefined();
    const waiting = semaphore.acquire();
    first?.();
    // The slot went to the waiter, not to a caller barging in.
    expect(semaphore.tryAcquire()).toBeUndefined();
    (await waiting)();
    expect(semaphore.inUse).toBe(0);
  });
});
