// Capped backoff strategies, as pure functions of the lane's policy, the retry number and a random
// source. Every strategy is capped (BullMQ's own exponential backoff is not).
//
//   exponential   random(0, min(capMs, baseMs × 2^retry))              (AWS "full jitter")
//   decorrelated  min(capMs, random(baseMs, previousDelayMs × 3))       (AWS "decorrelated jitter")
//   fixed         baseMs × (1 ± jitter), capped
//   linear        min(capMs, baseMs × (retry + 1))
//
// `retry` is 0 for the first retry. A Retry-After hint is a floor on the delay, itself clamped to capMs.
import type { BackoffPolicy } from '@bullpen/core';
import type { RandomSource } from './random';

export interface BackoffInput {
  /** 0 for the first retry (after attempt 1 failed), 1 for the second, … */
  retry: number;
  /** The delay chosen before the previous retry; decorrelated jitter grows from it. Default baseMs. */
  previousDelayMs?: number;
  /** The dependency's Retry-After, in ms: the delay is at least this, clamped to capMs. */
  retryAfterMs?: number;
}

/** random(low, high) with low ≤ high. */
function between(random: RandomSource, low: number, high: number): number {
  return low + random() * (high - low);
}

export function exponentialDelay(policy: BackoffPolicy, retry: number, random: RandomSource): number {
  // 2^retry overflows to Infinity for huge retries, and min() then picks the cap, as intended.
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** retry);
  return between(random, 0, ceiling);
}

export function decorrelatedDelay(policy: BackoffPolicy, previousDelayMs: number | undefined, random: RandomSource): number {
  const previous = previousDelayMs ?? policy.baseMs;
  const high = Math.max(policy.baseMs, previous * 3);
  return Math.min(policy.capMs, between(random, policy.baseMs, high));
}

export function fixedDelay(policy: BackoffPolicy, random: RandomSource): number {
  const spread = policy.baseMs * policy.jitter;
  return Math.min(policy.capMs, between(random, policy.baseMs - spread, policy.baseMs + spread));
}

export function linearDelay(policy: BackoffPolicy, retry: number): number {
  return Math.min(policy.capMs, policy.baseMs * (retry + 1));
}

/** The delay before the next attempt, in whole milliseconds, never above policy.capMs. */
export function backoffDelay(policy: BackoffPolicy, input: BackoffInput, random: RandomSource = Math.random): number {
  let delay: number;
  switch (policy.strategy) {
    case 'exponential':
      delay = exponentialDelay(policy, input.retry, random);
      break;
    case 'decorrelated':
      delay = decorrelatedDelay(policy, input.previousDelayMs, random);
      break;
    case 'fixed':
      delay = fixedDelay(policy, random);
      break;
    case 'linear':
      delay = linearDelay(policy, input.retry);
      break;
  }
  return withRetryAfter(Math.max(0, Math.min(policy.capMs, Math.floor(delay))), input.retryAfterMs, policy.capMs);
}

/** A strategy's delay raised to at least a Retry-After hint, the hint itself clamped to capMs. */
export function withRetryAfter(delayMs: number, retryAfterMs: number | undefined, capMs: number): number {
  if (retryAfterMs === undefined || retryAfterMs <= 0) return delayMs;
  return Math.max(delayMs, Math.min(Math.floor(retryAfterMs), capMs));
}
