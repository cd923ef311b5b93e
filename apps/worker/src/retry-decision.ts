// What happens after a failed attempt: whether another attempt follows and after how long.
// Pure, so the rules (and the retry budget and deadline checks that build on them) are testable
// without Redis.
import type { BackoffPolicy, Classification } from '@bullpen/core';
import { backoffDelay } from './backoff';
import type { RandomSource } from './random';

export interface RetryDecisionInput {
  classification: Classification;
  /** Attempts made before the one that just failed (BullMQ's job.attemptsMade). */
  attemptsMade: number;
  /** The job's attempts, including the first. */
  maxAttempts: number;
  backoff: BackoffPolicy;
  /** The delay chosen before the previous retry, if there was one. */
  previousDelayMs?: number;
  random?: RandomSource;
}

export interface RetryDecision {
  willRetry: boolean;
  /** Delay before the next attempt; null when none follows. */
  delayMs: number | null;
}

export function decideRetry(input: RetryDecisionInput): RetryDecision {
  const { classification } = input;
  // Same rule as BullMQ's Job.shouldRetryJob, so that what we record matches what it does.
  const attemptsLeft = input.attemptsMade + 1 < input.maxAttempts;
  if (!classification.retryable || !attemptsLeft) return { willRetry: false, delayMs: null };
  const delayMs = backoffDelay(
    input.backoff,
    {
      retry: input.attemptsMade,
      ...(input.previousDelayMs !== undefined ? { previousDelayMs: input.previousDelayMs } : {}),
      ...(classification.retryAfterMs !== undefined ? { retryAfterMs: classification.retryAfterMs } : {}),
    },
    input.random,
  );
  return { willRetry: true, delayMs };
}
