// The verdict on a failed attempt, lane rules included: the job's own rules (retry-decision.ts),
// then the bound on rate-limited retries that use no attempt, then the job's deadline (no retry may start after it), then the lane's retry budget shared by all
// replicas (a refused retry is deferred to about the backoff cap, where it asks the budget again
// before it runs: budget-gate.ts; or the job fails). Pure apart from the one budget call it is handed.
import type { Classification, ErrorClass, LanePolicy, RetryBudgetDecision } from '@bullpen/core';
import type { DeadReason, DelaySource, RetryReason } from './events';
import type { RandomSource } from './random';
import { decideRetry } from './retry-decision';

/** The failedReason of a job whose next retry would have started after its deadline. */
export const DEADLINE_EXCEEDED = 'deadline_exceeded';
/** The failedReason of a job whose retry the budget refused on a lane with `onExhausted: fail`. */
export const RETRY_BUDGET_EXHAUSTED = 'retry_budget_exhausted';
/** The failedReason of a job rate limited once more after the lane's maxRateLimitedRetries free retries. */
export const RATE_LIMITED_RETRIES_EXHAUSTED = 'rate_limited_retries_exhausted';

export interface BudgetRefusal {
  action: 'defer' | 'fail';
  retriesInWindow: number;
  allowedInWindow: number;
}

export type RetryPlan =
  | {
      kind: 'retry';
      delayMs: number;
      reason: RetryReason;
      source: DelaySource;
      /** False for a rate-limited failure on a lane with `rateLimitedConsumesAttempt: false`. */
      consumesAttempt: boolean;
      /** Set when the budget refused the retry and it was deferred. */
      budget?: BudgetRefusal;
    }
  | {
      kind: 'dead';
      reason: DeadReason;
      /** The error class recorded for the attempt (deadline_exceeded for a deadline stop). */
      errorClass: ErrorClass;
      /** The job's failedReason when it is not the error's message. */
      failedReason?: string;
      /** Set when the budget refused the retry and the lane fails such jobs. */
      budget?: BudgetRefusal;
    };

export interface RetryPlanInput {
  classification: Classification;
  /** BullMQ's job.attemptsMade before this attempt. */
  attemptsMade: number;
  maxAttempts: number;
  /** The backoff's retry number: retries so far, including those that used no attempt. */
  retry: number;
  /** Rate-limited retries so far that used no attempt. */
  rateLimitedRetries: number;
  policy: Pick<LanePolicy, 'backoff' | 'retryBudget' | 'rateLimitedConsumesAttempt' | 'maxRateLimitedRetries'>;
  previousDelayMs?: number;
  /** Epoch ms after which no attempt may start. */
  deadlineAt?: number;
  now: number;
  random: RandomSource;
  /**
   * The delay BullMQ will use whatever is decided here: jobs added by plain BullMQ clients with one
   * of BullMQ's own backoffs (or none, which retries at once) never reach bullpen's strategy.
   */
  bullmqDelayMs?: number;
  /** Asks the lane's retry budget for one retry (called only when a retry is otherwise due). */
  tryRetry(): Promise<RetryBudgetDecision>;
}

export async function planRetry(input: RetryPlanInput): Promise<RetryPlan> {
  const { classification, policy } = input;
  const rateLimited = classification.errorClass === 'rate_limited';
  const consumesAttempt = !(rateLimited && !policy.rateLimitedConsumesAttempt);
  const decision = decideRetry({
    classification,
    attemptsMade: input.attemptsMade,
    maxAttempts: input.maxAttempts,
    backoff: policy.backoff,
    retry: input.retry,
    countsAgainstAttempts: consumesAttempt,
    ...(input.previousDelayMs !== undefined ? { previousDelayMs: input.previousDelayMs } : {}),
    random: input.random,
  });
  if (!decision.willRetry) {
    return { kind: 'dead', reason: deadReasonOf(classification), errorClass: classification.errorClass };
  }
  // Free retries have no attempts to run out of: without this bound a dependency that keeps
  // refusing would keep a job without a deadline retrying forever.
  if (!consumesAttempt && input.rateLimitedRetries >= policy.maxRateLimitedRetries) {
    return {
      kind: 'dead',
      reason: 'rate_limited_retries_exhausted',
      errorClass: classification.errorClass,
      failedReason: RATE_LIMITED_RETRIES_EXHAUSTED,
    };
  }

  let delayMs = input.bullmqDelayMs ?? decision.delayMs ?? 0;
  let source: DelaySource = input.bullmqDelayMs !== undefined ? 'bullmq' : (decision.source ?? 'strategy');
  const pastDeadline = () => input.deadlineAt !== undefined && input.now + delayMs > input.deadlineAt;
  // Checked before the budget, so that a retry that cannot happen does not spend it.
  if (pastDeadline()) return deadlineStop();

  const budget = await input.tryRetry();
  let refusal: BudgetRefusal | undefined;
  if (!budget.granted) {
    const action = policy.retryBudget.onExhausted;
    refusal = { action, retriesInWindow: budget.retriesInWindow, allowedInWindow: budget.allowedInWindow };
    if (action === 'fail') {
      return {
        kind: 'dead',
        reason: 'retry_budget_exhausted',
        errorClass: classification.errorClass,
        failedReason: RETRY_BUDGET_EXHAUSTED,
        budget: refusal,
      };
    }
    // BullMQ's own backoffs cannot be lengthened from here; such jobs keep BullMQ's delay (and
    // ask the budget again when it ends, as every deferred retry does: budget-gate.ts).
    if (input.bullmqDelayMs === undefined) {
      delayMs = budgetDeferralDelay(policy.backoff.capMs, input.random);
      source = 'budget_cap';
    }
    if (pastDeadline()) return { ...deadlineStop(), budget: refusal };
  }
  const reason: RetryReason = refusal ? 'budget_deferred' : rateLimited ? 'rate_limited' : 'backoff';
  return { kind: 'retry', delayMs, reason, source, consumesAttempt, ...(refusal ? { budget: refusal } : {}) };
}

/**
 * How long a retry the budget refused waits before it asks again: uniform in [capMs/2, capMs], so
 * that the jobs a refusal catches together (a whole herd failing at once) come back spread out
 * rather than together at the cap.
 */
export function budgetDeferralDelay(capMs: number, random: RandomSource): number {
  return Math.round(capMs / 2 + random() * (capMs / 2));
}

function deadlineStop(): Extract<RetryPlan, { kind: 'dead' }> {
  return { kind: 'dead', reason: 'deadline_exceeded', errorClass: 'deadline_exceeded', failedReason: DEADLINE_EXCEEDED };
}

function deadReasonOf(classification: Classification): DeadReason {
  if (classification.retryable) return 'attempts_exhausted';
  if (classification.errorClass === 'cancelled') return 'cancelled';
  if (classification.errorClass === 'deadline_exceeded') return 'deadline_exceeded';
  return 'permanent_error';
}
