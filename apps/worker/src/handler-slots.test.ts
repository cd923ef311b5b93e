import { HandlerSlots, type LaneSlots } from './handler-slots';

/** A lane whose lease limits are recorded as its BullMQ Worker would receive them. */
function lane(slots: HandlerSlots, concurrency: number): { slots: LaneSlots; limits: number[] } {
  const limits: number[] = [];
  const laneSlots = slots.lane({ concurrency, onLeaseLimit: (limit) => limits.push(limit) });
  return { slots: laneSlots, limits };
}

describe('HandlerSlots', () => {
  it('never has more than its capacity held while many leases of several lanes contend', async () => {
    const slots = new HandlerSlots(3);
    const lanes = [lane(slots, 4).slots, lane(slots, 4).slots];
    let current = 0;
    let max = 0;
    await Promise.all(
      Array.from({ length: 30 }, async (_, i) => {
        const release = await lanes[i % 2]!.acquire();
        current += 1;
        max = Math.max(max, current);
        await new Promise((r) => setImmediate(r));
        if (i % 3) await new Promise((r) => setImmediate(r));
        current -= 1;
        release();
      }),
    );
    expect(max).toBe(3);
    expect(slots.inUse).toBe(0);
  });

  it('leaves every lane at its whole concurrency when the concurrencies fit in the capacity together', () => {
    const slots = new HandlerSlots(8);
    const a = lane(slots, 5);
    const b = lane(slots, 3);
    expect([a.slots.leaseLimit, b.slots.leaseLimit]).toEqual([5, 3]);
    b.slots.drained();
    b.slots.leased('b1');
    b.slots.begun('b1');
    a.slots.drained();
    a.slots.setFetching(false);
    a.slots.setFetching(true);
    // Set once, when each lane registered: the queues emptying and filling move nothing.
    expect(a.limits).toEqual([5]);
    expect(b.limits).toEqual([3]);
  });

  it('splits the slots between busy lanes, and gives an idle lane one for the job it waits for', () => {
    const slots = new HandlerSlots(4);
    const big = lane(slots, 20);
    const small = lane(slots, 2);
    expect([big.slots.leaseLimit, small.slots.leaseLimit]).toEqual([2, 2]);
    small.slots.drained();
    expect([big.slots.leaseLimit, small.slots.leaseLimit]).toEqual([3, 1]);
    small.slots.leased('s1');
    // The big lane's limit comes down; the small lane's goes up only into a slot nobody may use.
    expect([big.slots.leaseLimit, small.slots.leaseLimit]).toEqual([2, 2]);
  });

  it('raises a lane\'s limit only once the lane above its share has given a slot back', () => {
    const slots = new HandlerSlots(4);
    const big = lane(slots, 20);
    const small = lane(slots, 2);
    small.slots.drained();
    const running = [1, 2, 3].map(() => big.slots.tryAcquire()!);
    small.slots.leased('s1');
    small.slots.begun('s1');
    const first = small.slots.tryAcquire()!;
    expect(first).toBeDefined();
    // Three big handlers and one small one hold all four slots: the big lane is over its share of 2.
    expect([big.slots.leaseLimit, small.slots.leaseLimit]).toEqual([2, 1]);
    running[0]!();
    expect([big.slots.leaseLimit, small.slots.leaseLimit]).toEqual([2, 2]);
    expect(small.limits.at(-1)).toBe(2);
    first();
    for (const release of running) release();
  });

  it('counts a leased job whose attempt has not begun, so an idle lane keeps a slot for the next one', () => {
    const slots = new HandlerSlots(3);
    const a = lane(slots, 4).slots;
    a.leased('j1');
    // BullMQ fetches on before it starts j1, and finds the queue empty.
    a.drained();
    expect(a.leaseLimit).toBe(2);
    a.begun('j1');
    const release = a.tryAcquire()!;
    expect(a.leaseLimit).toBe(2);
    release();
    expect(a.leaseLimit).toBe(1);
  });

  it('tells a lease beyond the lane\'s share, made by a fetch opened under its higher limit, from one the lane has a slot for', () => {
    const slots = new HandlerSlots(3);
    const a = lane(slots, 4).slots;
    const b = lane(slots, 4).slots;
    // b runs one job and waits for its next with a second slot; a is idle.
    a.drained();
    b.leased('b1');
    b.begun('b1');
    const b1 = b.tryAcquire()!;
    b.drained();
    expect([a.leaseLimit, b.leaseLimit]).toEqual([1, 2]);
    // a gets busy: b's limit drops to 1 and a takes the slot b kept.
    a.leased('a1');
    expect([a.leaseLimit, b.leaseLimit]).toEqual([2, 1]);
    a.begun('a1');
    const a1 = a.tryAcquire()!;
    a.leased('a2');
    a.begun('a2');
    expect(a.leasedBeyondShare()).toBe(false);
    const a2 = a.tryAcquire()!;
    // b's fetch from before the drop delivers a job: no slot is free and b holds its limit.
    b.leased('b2');
    b.begun('b2');
    expect(b.leasedBeyondShare()).toBe(true);
    // Once a slot is free, the same lease can run.
    a2();
    expect(b.leasedBeyondShare()).toBe(false);
    for (const release of [a1, b1]) release();
  });

  it('hands a released slot to the waiting lane that runs fewest handlers, before another lane\'s backlog', async () => {
    // More lanes than slots: each lane may still hold one job, which then waits.
    const slots = new HandlerSlots(2);
    const a = lane(slots, 4).slots;
    const b = lane(slots, 4).slots;
    const c = lane(slots, 4).slots;
    const heldByA = [a.tryAcquire()!, a.tryAcquire()!];
    const order: string[] = [];
    const waitA = a.acquire().then((release) => order.push('a') && release);
    const waitB = b.acquire().then((release) => order.push('b') && release);
    expect(slots.waiting).toBe(2);
    expect([a.waiting, b.waiting, c.waiting]).toEqual([1, 1, 0]);
    heldByA[0]!();
    await waitB;
    expect(order).toEqual(['b']);
    heldByA[1]!();
    await waitA;
    expect(order).toEqual(['b', 'a']);
  });

  it('ignores a second release of the same slot', () => {
    const slots = new HandlerSlots(1);
    const only = lane(slots, 1).slots;
    const release = only.tryAcquire()!;
    release();
    release();
    expect(slots.inUse).toBe(0);
    expect(only.tryAcquire()).toBeDefined();
    expect(slots.inUse).toBe(1);
  });

  it('removes an aborted waiter from the queue and rejects with the abort reason', async () => {
    const slots = new HandlerSlots(1);
    const only = lane(slots, 2).slots;
    const held = only.tryAcquire()!;
    const controller = new AbortController();
    const waiting = only.acquire(controller.signal);
    controller.abort(new Error('gone'));
    await expect(waiting).rejects.toThrow('gone');
    expect(slots.waiting).toBe(0);
    held();
    expect(slots.inUse).toBe(0);
  });

  it('gives a lane whose intake is held only what it runs, and its share back when it takes jobs again', () => {
    const slots = new HandlerSlots(4);
    const a = lane(slots, 4);
    const b = lane(slots, 4);
    const running = a.slots.tryAcquire()!;
    a.slots.setFetching(false);
    expect([a.slots.leaseLimit, b.slots.leaseLimit]).toEqual([1, 3]);
    running();
    expect(b.slots.leaseLimit).toBe(4);
    a.slots.setFetching(true);
    expect([a.slots.leaseLimit, b.slots.leaseLimit]).toEqual([2, 2]);
  });

  it('rejects a capacity below one', () => {
    expect(() => new HandlerSlots(0)).toThrow(RangeError);
  });
});
