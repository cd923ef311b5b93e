import { RepeatLeases } from './repeat-leases';

describe('RepeatLeases', () => {
  it('knows a lease of the attempt a retry that used no attempt named, once', () => {
    const repeats = new RepeatLeases();
    repeats.retryScheduled('a', '7', 1, 1);
    // A retry that used an attempt names the next one: its lease is a new attempt, not a repeat.
    repeats.retryScheduled('a', '8', 1, 2);
    expect(repeats.leased('a', '7', 1)).toBe(true);
    expect(repeats.leased('a', '7', 1)).toBe(false);
    expect(repeats.leased('a', '8', 2)).toBe(false);
    expect(repeats.leased('b', '7', 1)).toBe(false);
    expect(repeats.size).toBe(0);
  });

  it('holds at most its bound of retries, forgetting the oldest', () => {
    const repeats = new RepeatLeases(100);
    for (let job = 0; job < 10_000; job += 1) repeats.retryScheduled('a', String(job), 1, 1);
    expect(repeats.size).toBe(100);
    expect(repeats.leased('a', '9999', 1)).toBe(true);
    expect(repeats.leased('a', '0', 1)).toBe(false);
  });
});
