// What happens after a failed attempt, by the job's own rules: whether another attempt may follow
// and after how long. Pure, so that the rules are testable without Redis; the lane-wide rules
// that build on it (deadline, retry budget) are in retry-plan.ts.
import type { BackoffPolicy, Classification } from '@bullpen/core';
import { backoffDelay, withRetryAfter } from './backoff';
import type { RandomSource } from './random';

export interface RetryDecisionInput {
  classification: Classification;
  /** Attempts made before the one that just failed (BullMQ's job.attemptsMade). */
  attemptsMade: number;
  /** The job's attempts, including the first. */
  maxAttempts: number;
  backoff: BackoffPolicy;
  /** The backoff's retry number (0 for the first retry); default attemptsMade. Differs when some
   * earlier retries used no attempt. */
  retry?: number;
  /** Whether this failure uses one of the job's attempts; default true. A failure that does not
   * is retried even after the last attempt. */
  countsAgainstAttempts?: boolean;
  /** The delay chosen before the previous retry, if there was one. */
  previousDelayMs?: number;
  random?: RandomSource;
}

export interface RetryDecision {
  willRetry: boolean;
  /** Delay before the next attempt; null when none follows. */
  delayMs: number | null;
  /** 'retry_after' when a Retry-After hint made the delay longer than the strategy's. */
  source?: 'strategy' | 'retry_after';
}

export function decideRetry(input: RetryDecisionInput): RetryDecision {
  const { classification } = input;
  // Same rule as BullMQ's Job.shouldRetryJob, so that what we record matches what it does.
  const attemptsLeft = input.countsAgainstAttempts === false || input.attemptsMade + 1 < input.maxAttempts;
  if (!classification.retryable || !attemptsLeft) return { willRetry: false, delayMs: null };
  const strategyDelay = backoffDelay(
    input.backoff,
    {
      retry: input.retry ?? input.attemptsMade,
      ...(input.previousDelayMs !== undefined ? { previousDelayMs: input.previousDelayMs } : {}),
    },
    input.random,
  );
  const delayMs = withRetryAfter(strategyDelay, classification.retryAfterMs, input.backoff.capMs);
  return { willRetry: true, delayMs, source: delayMs > strategyDelay ? 'retry_after' : 'strategy' };
}
