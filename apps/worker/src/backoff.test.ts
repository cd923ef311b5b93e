import type { BackoffPolicy } from '@bullpen/core';
import { backoffDelay } from './backoff';
import { seededRandom } from './random';
import { decideRetry } from './retry-decision';

const policy = (over: Partial<BackoffPolicy>): BackoffPolicy => ({ strategy: 'exponential', baseMs: 100, capMs: 5000, jitter: 0, ...over });

/** The delays of retries 0..n-1 under a seeded source, feeding each delay back as the previous one. */
function series(p: BackoffPolicy, n: number, seed = 42): number[] {
  const random = seededRandom(seed);
  const delays: number[] = [];
  let previous: number | undefined;
  for (let retry = 0; retry < n; retry++) {
    const delay = backoffDelay(p, { retry, ...(previous !== undefined ? { previousDelayMs: previous } : {}) }, random);
    delays.push(delay);
    previous = delay;
  }
  return delays;
}

describe('backoff strategies', () => {
  it('gives the same delays for the same seed and different ones for another seed', () => {
    const p = policy({ strategy: 'exponential' });
    expect(series(p, 8, 7)).toEqual(series(p, 8, 7));
    expect(series(p, 8, 7)).not.toEqual(series(p, 8, 8));
  });

  it('draws exponential delays from [0, min(cap, base × 2^retry)) with full jitter', () => {
    const p = policy({ strategy: 'exponential', baseMs: 100, capMs: 5000 });
    const random = seededRandom(1);
    const expected = seededRandom(1);
    for (let retry = 0; retry < 12; retry++) {
      const ceiling = Math.min(5000, 100 * 2 ** retry);
      const delay = backoffDelay(p, { retry }, random);
      expect(delay).toBe(Math.floor(expected() * ceiling));
      expect(delay).toBeGreaterThanOrEqual(0);
      expect(delay).toBeLessThan(ceiling);
    }
  });

  it('never lets exponential delays pass the cap, even after many retries', () => {
    const p = policy({ strategy: 'exponential', baseMs: 1000, capMs: 3000 });
    const always = () => 0.999999;
    for (const retry of [5, 30, 1100]) expect(backoffDelay(p, { retry }, always)).toBeLessThanOrEqual(3000);
  });

  it('draws decorrelated delays from [base, previous × 3], capped', () => {
    const p = policy({ strategy: 'decorrelated', baseMs: 100, capMs: 2000 });
    const delays = series(p, 20, 3);
    const replay = seededRandom(3);
    let previous = 100;
    for (const delay of delays) {
      const high = Math.max(100, previous * 3);
      expect(delay).toBe(Math.floor(Math.min(2000, 100 + replay() * (high - 100))));
      expect(delay).toBeGreaterThanOrEqual(100);
      expect(delay).toBeLessThanOrEqual(2000);
      previous = delay;
    }
    expect(Math.max(...delays)).toBeGreaterThan(1000);
  });

  it('keeps fixed delays within base ± jitter and exactly base without jitter', () => {
    expect(series(policy({ strategy: 'fixed', baseMs: 500, jitter: 0 }), 5)).toEqual([500, 500, 500, 500, 500]);
    for (const delay of series(policy({ strategy: 'fixed', baseMs: 1000, jitter: 0.2 }), 50)) {
      expect(delay).toBeGreaterThanOrEqual(800);
      expect(delay).toBeLessThanOrEqual(1200);
    }
  });

  it('grows linear delays by base per retry up to the cap', () => {
    expect(series(policy({ strategy: 'linear', baseMs: 300, capMs: 1000 }), 5)).toEqual([300, 600, 900, 1000, 1000]);
  });

  it('waits at least a Retry-After hint, clamped to the cap', () => {
    const zero = () => 0;
    const p = policy({ strategy: 'exponential', baseMs: 100, capMs: 5000 });
    expect(backoffDelay(p, { retry: 0, retryAfterMs: 1500 }, zero)).toBe(1500);
    expect(backoffDelay(p, { retry: 0, retryAfterMs: 60_000 }, zero)).toBe(5000);
    expect(backoffDelay(policy({ strategy: 'linear', baseMs: 3000 }), { retry: 0, retryAfterMs: 10 }, zero)).toBe(3000);
  });
});

describe('decideRetry', () => {
  const backoff = policy({ strategy: 'fixed', baseMs: 250 });

  it('retries a retryable failure while attempts remain, with the backoff delay', () => {
    const decision = decideRetry({ classification: { errorClass: 'network', retryable: true }, attemptsMade: 0, maxAttempts: 3, backoff });
    expect(decision).toEqual({ willRetry: true, delayMs: 250, source: 'strategy' });
  });

  it('does not retry after the last attempt', () => {
    const decision = decideRetry({ classification: { errorClass: 'network', retryable: true }, attemptsMade: 2, maxAttempts: 3, backoff });
    expect(decision).toEqual({ willRetry: false, delayMs: null });
  });

  it('never retries a permanent failure', () => {
    const decision = decideRetry({ classification: { errorClass: 'http_4xx', retryable: false }, attemptsMade: 0, maxAttempts: 5, backoff });
    expect(decision).toEqual({ willRetry: false, delayMs: null });
  });

  it('passes a rate limit hint on as the floor of the delay', () => {
    const decision = decideRetry({
      classification: { errorClass: 'rate_limited', retryable: true, retryAfterMs: 2000 },
      attemptsMade: 0,
      maxAttempts: 2,
      backoff,
    });
    expect(decision).toEqual({ willRetry: true, delayMs: 2000, source: 'retry_after' });
  });

  it('retries a failure that uses no attempt even after the last attempt', () => {
    const classification = { errorClass: 'rate_limited' as const, retryable: true };
    expect(decideRetry({ classification, attemptsMade: 2, maxAttempts: 3, backoff })).toMatchObject({ willRetry: false });
    expect(decideRetry({ classification, attemptsMade: 2, maxAttempts: 3, backoff, countsAgainstAttempts: false })).toMatchObject({
      willRetry: true,
      delayMs: 250,
    });
  });

  it('grows the backoff by the retry number, which may run ahead of the attempts made', () => {
    const linear = policy({ strategy: 'linear', baseMs: 100, capMs: 10_000 });
    const classification = { errorClass: 'rate_limited' as const, retryable: true };
    expect(decideRetry({ classification, attemptsMade: 0, maxAttempts: 2, backoff: linear }).delayMs).toBe(100);
    expect(decideRetry({ classification, attemptsMade: 0, maxAttempts: 2, backoff: linear, retry: 3 }).delayMs).toBe(400);
  });
});
