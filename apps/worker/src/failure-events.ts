// The lifecycle events of a failed attempt: emitted once its outcome is recorded, by BullMQ (its
// 'failed' event) or by the worker itself (a rate-limited retry that uses no attempt).
import type { AttemptDeps, FailedAttempt } from './attempt';

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
  if (plan.kind !== 'retry') return;
  emit('job:backoff-applied', {
    ...ref,
    delayMs: plan.delayMs,
    strategy: plan.source === 'bullmq' ? 'bullmq' : failed.strategy,
    source: plan.source,
    retryAfterMs: classification.retryAfterMs,
  });
  emit('job:retrying', {
    ...ref,
    errorClass: classification.errorClass,
    delayMs: plan.delayMs,
    nextAttempt: plan.consumesAttempt ? ref.attempt + 1 : ref.attempt,
    reason: plan.reason,
    consumesAttempt,
  });
}
