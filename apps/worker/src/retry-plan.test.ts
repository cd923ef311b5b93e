import type { Classification, LanePolicy, RetryBudgetDecision } from '@bullpen/core';
import { planRetry, type RetryPlanInput } from './retry-plan';

const policy: Pick<LanePolicy, 'backoff' | 'retryBudget' | 'rateLimitedConsumesAttempt' | 'maxRateLimitedRetries'> = {
  backoff: { strategy: 'fixed', baseMs: 100, capMs: 5000, jitter: 0 },
  retryBudget: { ratio: 0.2, minRetriesPerSecond: 10, windowSeconds: 10, onExhausted: 'defer' },
  rateLimitedConsumesAttempt: true,
  maxRateLimitedRetries: 20,
};
const retryable: Classification = { errorClass: 'network', retryable: true };
const granted: RetryBudgetDecision = { granted: true, retriesInWindow: 1, allowedInWindow: 10 };
const refused: RetryBudgetDecision = { granted: false, retriesInWindow: 10, allowedInWindow: 10 };

function input(over: Partial<RetryPlanInput> = {}): RetryPlanInput {
  return {
    classification: retryable,
    attemptsMade: 0,
    maxAttempts: 3,
    retry: 0,
    rateLimitedRetries: 0,
    policy,
    now: 1_000_000,
    random: () => 0.5,
    tryRetry: jest.fn(async () => granted),
    ...over,
  };
}

describe('planRetry', () => {
  it('schedules a retry with the backoff delay when the budget grants it', async () => {
    expect(await planRetry(input())).toEqual({ kind: 'retry', delayMs: 100, reason: 'backoff', source: 'strategy', consumesAttempt: true });
  });

  it('fails a permanent error and an exhausted job without asking the budget', async () => {
    const tryRetry = jest.fn(async () => granted);
    expect(await planRetry(input({ classification: { errorClass: 'http_4xx', retryable: false }, tryRetry }))).toEqual({
      kind: 'dead',
      reason: 'permanent_error',
      errorClass: 'http_4xx',
    });
    expect(await planRetry(input({ attemptsMade: 2, tryRetry }))).toEqual({ kind: 'dead', reason: 'attempts_exhausted', errorClass: 'network' });
    expect(await planRetry(input({ classification: { errorClass: 'cancelled', retryable: false }, tryRetry }))).toMatchObject({
      reason: 'cancelled',
    });
    expect(tryRetry).not.toHaveBeenCalled();
  });

  it('stops with deadline_exceeded when the retry would start after the deadline, before spending budget', async () => {
    const tryRetry = jest.fn(async () => granted);
    const plan = await planRetry(input({ deadlineAt: 1_000_099, tryRetry }));
    expect(plan).toEqual({ kind: 'dead', reason: 'deadline_exceeded', errorClass: 'deadline_exceeded', failedReason: 'deadline_exceeded' });
    expect(tryRetry).not.toHaveBeenCalled();
    expect(await planRetry(input({ deadlineAt: 1_000_100 }))).toMatchObject({ kind: 'retry', delayMs: 100 });
  });

  it('defers a retry the budget refuses to a jittered delay between half the backoff cap and the cap on a defer lane', async () => {
    const plan = await planRetry(input({ tryRetry: async () => refused }));
    expect(plan).toEqual({
      kind: 'retry',
      delayMs: 3750,
      reason: 'budget_deferred',
      source: 'budget_cap',
      consumesAttempt: true,
      budget: { action: 'defer', retriesInWindow: 10, allowedInWindow: 10 },
    });
  });

  it('spreads the deferred retries of jobs refused together over half the backoff cap', async () => {
    const delays = await Promise.all(
      [0, 0.25, 0.999].map(async (r) => {
        const plan = await planRetry(input({ random: () => r, tryRetry: async () => refused }));
        return plan.kind === 'retry' ? plan.delayMs : -1;
      }),
    );
    expect(delays).toEqual([2500, 3125, 4998]);
  });

  it('stops a deferred retry whose longer delay passes the deadline', async () => {
    const plan = await planRetry(input({ deadlineAt: 1_001_000, tryRetry: async () => refused }));
    expect(plan).toMatchObject({ kind: 'dead', reason: 'deadline_exceeded', budget: { action: 'defer' } });
  });

  it('fails the job with retry_budget_exhausted, keeping the error class, on a fail lane', async () => {
    const failLane = { ...policy, retryBudget: { ...policy.retryBudget, onExhausted: 'fail' as const } };
    const plan = await planRetry(input({ policy: failLane, tryRetry: async () => refused }));
    expect(plan).toEqual({
      kind: 'dead',
      reason: 'retry_budget_exhausted',
      errorClass: 'network',
      failedReason: 'retry_budget_exhausted',
      budget: { action: 'fail', retriesInWindow: 10, allowedInWindow: 10 },
    });
  });

  it('floors the delay at Retry-After and, when the lane says so, uses no attempt for a rate-limited retry', async () => {
    const limited: Classification = { errorClass: 'rate_limited', retryable: true, retryAfterMs: 1500 };
    const free = { ...policy, rateLimitedConsumesAttempt: false };
    expect(await planRetry(input({ classification: limited }))).toMatchObject({ delayMs: 1500, source: 'retry_after', consumesAttempt: true });
    expect(await planRetry(input({ classification: limited, policy: free, attemptsMade: 2 }))).toEqual({
      kind: 'retry',
      delayMs: 1500,
      reason: 'rate_limited',
      source: 'retry_after',
      consumesAttempt: false,
    });
    // Still budgeted.
    expect(await planRetry(input({ classification: limited, policy: free, tryRetry: async () => refused }))).toMatchObject({
      reason: 'budget_deferred',
      delayMs: 3750,
      consumesAttempt: false,
    });
  });

  it('fails a job rate limited once more after the lane\'s free rate-limited retries, without asking the budget', async () => {
    const limited: Classification = { errorClass: 'rate_limited', retryable: true, retryAfterMs: 1500 };
    const free = { ...policy, rateLimitedConsumesAttempt: false, maxRateLimitedRetries: 3 };
    const tryRetry = jest.fn(async () => granted);
    expect(await planRetry(input({ classification: limited, policy: free, rateLimitedRetries: 2, tryRetry }))).toMatchObject({
      kind: 'retry',
      consumesAttempt: false,
    });
    expect(tryRetry).toHaveBeenCalledTimes(1);
    expect(await planRetry(input({ classification: limited, policy: free, rateLimitedRetries: 3, tryRetry }))).toEqual({
      kind: 'dead',
      reason: 'rate_limited_retries_exhausted',
      errorClass: 'rate_limited',
      failedReason: 'rate_limited_retries_exhausted',
    });
    expect(tryRetry).toHaveBeenCalledTimes(1);
    // Where rate-limited retries use attempts, the attempts bound them instead.
    expect(await planRetry(input({ classification: limited, rateLimitedRetries: 3 }))).toMatchObject({ kind: 'retry', consumesAttempt: true });
  });

  it('keeps the delay BullMQ will use for jobs with one of its own backoffs', async () => {
    expect(await planRetry(input({ bullmqDelayMs: 0, tryRetry: async () => refused }))).toMatchObject({
      kind: 'retry',
      delayMs: 0,
      source: 'bullmq',
      reason: 'budget_deferred',
    });
  });
});
