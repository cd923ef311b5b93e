// The start of a retry that the lane's retry budget deferred: it asks the budget again before its
// handler runs, so that a deferred retry reaches the dependency only when the budget grants it. A
// retry refused again goes back to the delayed set without running and without using an attempt
// (as a free rate-limited retry does), for another jittered wait; the job's deadline still bounds it.
import { appendAttemptRow, LANE_EVENT, PermanentError } from '@bullpen/core';
import { DelayedError } from 'bullmq';
import type { AnyJob, AttemptDeps } from './attempt-deps';
import { askBudget } from './attempt-failure';
import type { AttemptTrace } from './attempt-trace';
import type { AttemptRef } from './events';
import { clearBudgetDeferred, countBudgetDeferral, type StartHistory } from './job-history';
import { budgetDeferralDelay } from './retry-plan';

/** Thrown by the processor for a start whose deferred retry the budget refused again: the job is
 * back in the delayed set, and BullMQ neither counts an attempt nor reports a failure for it. */
export class BudgetDeferredError extends DelayedError {
  constructor(readonly delayMs: number) {
    super(`the lane's retry budget deferred the retry again, by ${delayMs} ms`);
    this.name = 'DelayedError';
  }
}

/**
 * Lets the attempt run when its retry was not deferred or the budget grants it now. Otherwise
 * the job is deferred again and this throws a BudgetDeferredError, or a deadline_exceeded
 * PermanentError when the next wait would end after the job's deadline. When the job cannot be
 * moved (its lock lost, Redis away), the attempt runs: the failure is logged.
 */
export async function admitDeferredRetry(
  deps: AttemptDeps,
  job: AnyJob,
  token: string | undefined,
  ref: AttemptRef,
  history: StartHistory | undefined,
  deadlineAt: number | undefined,
  trace: AttemptTrace,
): Promise<void> {
  const deferrals = history?.budgetDeferrals ?? 0;
  if (deferrals === 0) return;
  const { config, lane, logger, policy, redis } = deps;
  const decision = await askBudget(deps, ref);
  if (decision.granted) {
    await clearBudgetDeferred(redis, config.prefix, lane, ref.jobId).catch((err: unknown) =>
      logger.warn('could not clear the retry budget deferral of a job', { job_id: ref.jobId, error: (err as Error).message }),
    );
    return;
  }
  // The last row is the failed attempt's, or that of an earlier deferral of its retry.
  const deferredAttempt = history?.lastRow?.attempt ?? Math.max(1, ref.attempt - 1);
  const errorClass = history?.lastRow?.errorClass ?? 'unknown';
  // The events name the attempt whose retry was refused, as the refusal after a failure does.
  const refused: AttemptRef = { ...ref, attempt: deferredAttempt };
  const refusal = { action: 'defer' as const, errorClass, retriesInWindow: decision.retriesInWindow, allowedInWindow: decision.allowedInWindow };
  deps.emit('job:retry-budget-exhausted', { ...refused, ...refusal });
  deps.publish({
    event: LANE_EVENT.retryBudgetExhausted,
    jobId: ref.jobId,
    ...refusal,
    name: ref.jobName,
    ...(ref.tenant !== undefined ? { tenant: ref.tenant } : {}),
    attempt: deferredAttempt,
    worker: ref.workerId,
  });
  const delayMs = budgetDeferralDelay(policy.backoff.capMs, deps.random);
  const now = Date.now();
  if (deadlineAt !== undefined && now + delayMs > deadlineAt) {
    throw new PermanentError(
      `deadline_exceeded: the lane's retry budget deferred the retry of attempt ${deferredAttempt} past the job's deadline`,
      'deadline_exceeded',
    );
  }
  const message =
    `retry deferred again by the lane's retry budget (${decision.retriesInWindow} retries in the window ` +
    `already, of ${decision.allowedInWindow} allowed); the handler did not run`;
  try {
    // Counted before the job leaves the active state, as a hand-back is: a crash in between can
    // only hide a reclaim, never report one that did not happen.
    await Promise.all([
      countBudgetDeferral(redis, config.prefix, lane, ref.jobId, token),
      appendAttemptRow(redis, {
        prefix: config.prefix,
        lane,
        jobId: ref.jobId,
        row: {
          // The attempt whose retry is deferred: this start used none of its own.
          attempt: deferredAttempt,
          errorClass,
          message,
          delayMs,
          worker: ref.workerId,
          ts: now,
          budgetDeferral: deferrals + 1,
        },
        ...(job.opts.keepLogs !== undefined ? { keepLogs: job.opts.keepLogs } : {}),
        // One row per deferred retry, whose count goes up: not one per refusal through an outage.
        replaceDeferralRow: true,
      }),
    ]);
    await job.moveToDelayed(now + delayMs, token);
  } catch (err) {
    logger.warn('could not defer a retry the budget refused again; running it', { job_id: ref.jobId, error: (err as Error).message });
    return;
  }
  trace.deferredByBudget(delayMs);
  deps.emit('job:backoff-applied', { ...refused, delayMs, strategy: policy.backoff.strategy, source: 'budget_cap', retryAfterMs: undefined });
  deps.emit('job:retrying', { ...refused, errorClass, delayMs, nextAttempt: ref.attempt, reason: 'budget_deferred', consumesAttempt: false });
  throw new BudgetDeferredError(delayMs);
}
