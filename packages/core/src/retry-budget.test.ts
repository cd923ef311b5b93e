import IORedis from 'ioredis';
import { RetryBudget } from './retry-budget';
import { cleanupPrefix } from '../../../test/support/config';
import { redisUrl, testPrefix } from '../../../test/support/wait';

const policy = { ratio: 0.2, minRetriesPerSecond: 1, windowSeconds: 10, onExhausted: 'defer' as const };

describe('RetryBudget', () => {
  const prefix = testPrefix('budget');
  let a: IORedis;
  let b: IORedis;
  beforeAll(() => {
    a = new IORedis(redisUrl());
    b = new IORedis(redisUrl());
  });
  afterAll(async () => {
    await cleanupPrefix(prefix);
    a.disconnect();
    b.disconnect();
  });

  it('allows ratio × first attempts + the floor in the window, and no more', async () => {
    let now = 1_000_000_000;
    const budget = new RetryBudget(a, prefix, 'lane1', policy, { now: () => now });
    for (let i = 0; i < 100; i += 1) budget.recordFirstAttempt();
    const decisions = [];
    for (let i = 0; i < 40; i += 1) decisions.push(await budget.tryRetry());
    // 0.2 × 100 + 1 × 10 = 30 retries allowed in the window.
    expect(decisions.filter((d) => d.granted)).toHaveLength(30);
    expect(decisions[39]).toEqual({ granted: false, retriesInWindow: 30, allowedInWindow: 30 });

    // Eleven seconds later the window has slid past all of it: only the floor is left.
    now += 11_000;
    const later = [];
    for (let i = 0; i < 12; i += 1) later.push(await budget.tryRetry());
    expect(later.filter((d) => d.granted)).toHaveLength(10);
    await budget.close();
  });

  it('is shared by budgets on separate connections (worker replicas)', async () => {
    const now = 2_000_000_000;
    const one = new RetryBudget(a, prefix, 'lane2', policy, { now: () => now });
    const two = new RetryBudget(b, prefix, 'lane2', policy, { now: () => now });
    for (let i = 0; i < 50; i += 1) one.recordFirstAttempt();
    for (let i = 0; i < 50; i += 1) two.recordFirstAttempt();
    await Promise.all([one.flush(), two.flush()]);
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) => (i % 2 === 0 ? one : two).tryRetry()),
    );
    expect(results.filter((d) => d.granted)).toHaveLength(30);
    await Promise.all([one.close(), two.close()]);
  });

  it.each([
    [0.7, 90, 63],
    [0.29, 100, 29],
    [0.58, 50, 29],
  ])('grants exactly the decimal allowance: ratio %p of %p first attempts allows %p retries', async (ratio, firsts, allowed) => {
    // Each product is an integer in decimals and just below it in binary floating point.
    const now = 3_000_000_000;
    const budget = new RetryBudget(a, prefix, `exact-${ratio}`, { ...policy, ratio, minRetriesPerSecond: 0 }, { now: () => now });
    for (let i = 0; i < firsts; i += 1) budget.recordFirstAttempt();
    let granted = 0;
    let last = await budget.tryRetry();
    while (last.granted) {
      granted += 1;
      last = await budget.tryRetry();
    }
    expect(granted).toBe(allowed);
    expect(last).toEqual({ granted: false, retriesInWindow: allowed, allowedInWindow: allowed });
    await budget.close();
  });

  it('adds a fractional minimum exactly: 0.29 a second over 100 s is 29 retries', async () => {
    const now = 4_000_000_000;
    const budget = new RetryBudget(a, prefix, 'exact-min', { ...policy, ratio: 0, minRetriesPerSecond: 0.29, windowSeconds: 100 }, { now: () => now });
    let last = await budget.tryRetry();
    let granted = 0;
    while (last.granted) {
      granted += 1;
      last = await budget.tryRetry();
    }
    expect(granted).toBe(29);
    expect(last.allowedInWindow).toBe(29);
    await budget.close();
  });
});
