// The lifecycle events of a failed attempt: emitted once its outcome is recorded, by BullMQ (its
// 'failed' event) or by the worker itself (a rate-limited retry that uses no attempt); and how
// its retry was decided, shared by those events and its bp:attempt entry.
import type { AttemptRetry, BackoffStrategyName, Classification } from '@bullpen/core';
import type { AttemptDeps } from './attempt-deps';
import type { AttemptRef, AttemptTimings } from './events';
import type { RetryPlan } from './retry-plan';

/** A failed attempt as recorded, kept until BullMQ (or the worker itself) records its outcome. */
export interface FailedAttempt {
  ref: AttemptRef;
  timings: AttemptTimings;
  classification: Classification;
  plan: RetryPlan;
  message: string;
  /** The lane's backoff strategy. */
  strategy: BackoffStrategyName;
}

/** The lifecycle events of a failed attempt, once BullMQ (or the worker itself) recorded it. */
export function emitFailure(emit: AttemptDeps['emit'], failed: FailedAttempt): void {
  const { ref, timings, classification, plan, message } = failed;
  const consumesAttempt = plan.kind === 'retry' ? plan.consumesAttempt : true;
  emit('job:failed', {
    ...ref,
    ...timings,
    errorClass: plan.kind === 'dead' ? plan.errorClass : classification.errorClass,
    message,
    retryable: classification.retryable,
    willRetry: plan.kind === 'retry',
    delayMs: plan.kind === 'retry' ? plan.delayMs : null,
    consumesAttempt,
  });
  const retry = retryOf(failed);
  if (!retry) return;
  emit('job:backoff-applied', { ...ref, delayMs: retry.delayMs, strategy: retry.strategy, source: retry.source, retryAfterMs: retry.retryAfterMs });
  emit('job:retrying', {
    ...ref,
    errorClass: classification.errorClass,
    delayMs: retry.delayMs,
    nextAttempt: retry.nextAttempt,
    reason: retry.reason,
    consumesAttempt,
  });
}

/** How a failed attempt's retry was decided: this process's backoff_applied and job:retrying
 * events, and the retry fields of its bp:attempt entry. Undefined when no retry follows. */
export function retryOf(failed: Pick<FailedAttempt, 'ref' | 'classification' | 'plan' | 'strategy'>) {
  const { ref, classification, plan } = failed;
  if (plan.kind !== 'retry') return undefined;
  return {
    delayMs: plan.delayMs,
    reason: plan.reason,
    strategy: plan.source === 'bullmq' ? ('bullmq' as const) : failed.strategy,
    source: plan.source,
    retryAfterMs: classification.retryAfterMs,
    nextAttempt: plan.consumesAttempt ? ref.attempt + 1 : ref.attempt,
  };
}

/** The retry fields of the attempt's bp:attempt entry. */
export function attemptRetryOf(failed: Pick<FailedAttempt, 'ref' | 'classification' | 'plan' | 'strategy'>): AttemptRetry | undefined {
  const retry = retryOf(failed);
  if (!retry) return undefined;
  const { reason, strategy, source, retryAfterMs, nextAttempt } = retry;
  return { reason, strategy, source, nextAttempt, ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) };
}
