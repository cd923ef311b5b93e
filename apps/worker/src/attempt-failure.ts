// The failure path of an attempt: classify the error, plan the retry (deadline, retry budget),
// record the attempt row and its event in one Redis call, and hand BullMQ the error that makes it
// do what the plan says. The failed attempt is kept by that error until BullMQ's 'failed' event
// and backoff strategy ask for it.
import { classifyError, describeThrown, publishLaneEvent, recordAttempt, unwrapJobData, JOB_FIELD, LANE_EVENT, type RetryBudgetDecision } from '@bullpen/core';
import { Backoffs, DelayedError, UnrecoverableError } from 'bullmq';
import type { AnyJob, AttemptDeps } from './attempt-deps';
import type { AttemptDebugLog } from './attempt-debug-log';
import type { AttemptTrace } from './attempt-trace';
import type { AttemptRef, AttemptTimings } from './events';
import { attemptRetryOf, emitFailure, type FailedAttempt } from './failure-events';
import { eligibleAt, RATE_LIMITED_RETRY_COUNTS, type StartHistory } from './job-history';
import { planRetry } from './retry-plan';

/** What the attempt runner knows of an attempt when it fails. */
export interface FailingAttempt {
  ref: AttemptRef;
  timings: AttemptTimings;
  startedAt: number;
  trace: AttemptTrace;
}

export class FailureRecorder {
  /** Keyed by the error handed to BullMQ, which passes the same object to the backoff strategy
   * and the 'failed' event. */
  private readonly failures = new WeakMap<object, FailedAttempt>();

  constructor(
    private readonly deps: AttemptDeps,
    private readonly debugLog: AttemptDebugLog,
  ) {}

  /** The failed attempt behind an error that record() returned. */
  failureOf(err: unknown): FailedAttempt | undefined {
    return typeof err === 'object' && err !== null ? this.failures.get(err) : undefined;
  }

  /** Classifies the failure, plans the retry, records the attempt row and its event (one Redis
   * call) and returns the error to hand to BullMQ. */
  async record(
    job: AnyJob,
    token: string | undefined,
    { ref, timings, startedAt, trace }: FailingAttempt,
    pendingHistory: Promise<StartHistory | undefined> | undefined,
    deadlineAt: number | undefined,
    err: unknown,
  ): Promise<Error> {
    const { policy, config, lane, redis, logger } = this.deps;
    const classification = classifyError(err, policy.errorRules);
    const message = describeThrown(err);
    const history = pendingHistory ? await pendingHistory : undefined;
    const bullmqDelayMs = bullmqDelay(job, err);
    const plan = await planRetry({
      classification,
      attemptsMade: job.attemptsMade,
      maxAttempts: ref.maxAttempts,
      retry: job.attemptsMade + (history?.uncountedStarts ?? 0),
      rateLimitedRetries: history?.rateLimitedRetries ?? 0,
      policy,
      ...(previousDelayOf(job, history) !== undefined ? { previousDelayMs: previousDelayOf(job, history) } : {}),
      ...(deadlineAt !== undefined ? { deadlineAt } : {}),
      ...(bullmqDelayMs !== undefined ? { bullmqDelayMs } : {}),
      now: Date.now(),
      random: this.deps.random,
      tryRetry: () => this.tryRetry(ref),
    });
    const errorClass = plan.kind === 'dead' ? plan.errorClass : classification.errorClass;
    const willRetry = plan.kind === 'retry';
    const consumesAttempt = plan.kind === 'retry' ? plan.consumesAttempt : true;
    const waitMs = Math.max(0, startedAt - eligibleAt(job, history, unwrapJobData(job.data).meta?.redrivenAt));
    const retry = attemptRetryOf({ ref, classification, plan, strategy: policy.backoff.strategy });
    const counts = [...(!consumesAttempt ? RATE_LIMITED_RETRY_COUNTS : []), ...(plan.kind === 'retry' && plan.budget ? [JOB_FIELD.budgetDeferred] : [])];
    const writes: Array<Promise<unknown>> = [
      recordAttempt(redis, {
        prefix: config.prefix,
        lane,
        maxLen: config.eventsMaxLen,
        attempt: {
          jobId: ref.jobId,
          name: ref.jobName,
          tenant: ref.tenant ?? '',
          attempt: ref.attempt,
          outcome: 'failed',
          errorClass,
          willRetry,
          runMs: timings.durationMs,
          waitMs,
          ...(plan.kind === 'retry' ? { delayMs: plan.delayMs } : {}),
          worker: ref.workerId,
          retryable: classification.retryable,
          ...(retry ? { retry } : {}),
        },
        message,
        // Free retries keep the attempt number: the row says which free retry it was.
        // Counted with the row, so never on a job this worker no longer holds or that is gone.
        ...(!consumesAttempt ? { rateLimitedRetry: (history?.rateLimitedRetries ?? 0) + 1 } : {}),
        // A retry the budget deferred is marked so: it asks the budget again when it comes due.
        ...(counts.length > 0 ? { counts } : {}),
        ...(job.opts.keepLogs !== undefined ? { keepLogs: job.opts.keepLogs } : {}),
        ...(token ? { lockToken: token } : {}),
      }),
    ];
    if (plan.budget) {
      const refusal = { action: plan.budget.action, errorClass: classification.errorClass, retriesInWindow: plan.budget.retriesInWindow, allowedInWindow: plan.budget.allowedInWindow };
      this.deps.emit('job:retry-budget-exhausted', { ...ref, ...refusal });
      const subject = { name: ref.jobName, ...(ref.tenant !== undefined ? { tenant: ref.tenant } : {}), attempt: ref.attempt, worker: ref.workerId };
      const ev = { event: LANE_EVENT.retryBudgetExhausted, jobId: ref.jobId, ...refusal, ...subject };
      writes.push(publishLaneEvent(redis, config.prefix, lane, ev, config.eventsMaxLen));
    }
    // Issued together, so they share one round trip; the row and its event are one script call.
    const results = await Promise.allSettled(writes);
    for (const result of results) {
      if (result.status === 'rejected') {
        logger.warn('could not record the failed attempt', { job_id: ref.jobId, error: (result.reason as Error)?.message });
      }
    }
    const [recorded] = results;
    if (recorded?.status === 'fulfilled' && recorded.value === null) {
      // Another worker holds the job now: its outcome is that worker's to record. BullMQ will not
      // move a job whose lock is another's either, so this error ends the attempt and no more.
      logger.warn('the attempt ended after this worker lost the job\'s lock; not recorded', { job_id: ref.jobId, attempt: ref.attempt, error: message });
      trace.failed({ errorClass, message, executed: timings.handlerMs !== null }, undefined);
      return err instanceof Error ? err : new Error(message);
    }
    const failed: FailedAttempt = { ref, timings, classification, plan, message, strategy: policy.backoff.strategy };
    trace.failed(
      { errorClass, message, executed: timings.handlerMs !== null },
      plan.kind === 'retry' ? { delayMs: plan.delayMs, reason: plan.reason } : undefined,
    );
    this.debugLog.failed(ref, errorClass, plan);

    if (plan.kind === 'retry' && !plan.consumesAttempt) {
      const delayed = await this.delayWithoutAttempt(job, token, plan.delayMs);
      if (delayed) {
        // BullMQ emits no 'failed' event for a DelayedError: the attempt's events are emitted here.
        emitFailure(this.deps.emit, failed);
        return delayed;
      }
    }
    let thrown: Error;
    if (plan.kind === 'retry' || plan.reason === 'attempts_exhausted') {
      // BullMQ keeps the thrown message as the job's failedReason: an Error without one (or a
      // thrown non-Error) is handed over with the message the attempt row has.
      thrown = err instanceof Error && err.message ? err : withStackOf(new Error(message), err);
    } else {
      thrown = new UnrecoverableError(plan.failedReason ?? message);
      if (err instanceof Error && err.stack) thrown.stack = err.stack;
    }
    this.failures.set(thrown, failed);
    return thrown;
  }

  private tryRetry(ref: AttemptRef): Promise<RetryBudgetDecision> {
    return askBudget(this.deps, ref);
  }

  /**
   * A rate-limited retry that uses no attempt: the job goes to the delayed set itself and BullMQ is
   * told so with a DelayedError, which it neither counts as an attempt nor reports as 'failed'.
   * Returns undefined when that fails (lost lock, Redis away); the failure then takes BullMQ's
   * ordinary retry path and uses an attempt.
   */
  private async delayWithoutAttempt(job: AnyJob, token: string | undefined, delayMs: number): Promise<Error | undefined> {
    try {
      await job.moveToDelayed(Date.now() + delayMs, token);
      return new DelayedError();
    } catch (err) {
      this.deps.logger.warn('could not delay a rate-limited job without using an attempt', { job_id: job.id, error: (err as Error).message });
      return undefined;
    }
  }
}

/** Asks the lane's budget for one retry; Redis trouble lets the retry through rather than failing
 * healthy jobs. */
export async function askBudget(deps: Pick<AttemptDeps, 'budget' | 'logger'>, ref: AttemptRef): Promise<RetryBudgetDecision> {
  try {
    return await deps.budget.tryRetry();
  } catch (err) {
    deps.logger.warn('retry budget unavailable; allowing the retry', { job_id: ref.jobId, error: (err as Error).message });
    return { granted: true, retriesInWindow: 0, allowedInWindow: 0 };
  }
}

/** The delay BullMQ itself will use, for jobs that do not carry bullpen's backoff. */
function bullmqDelay(job: AnyJob, err: unknown): number | undefined {
  // Jobs added by plain BullMQ clients may carry no backoff (BullMQ retries at once) or one of
  // BullMQ's built-in strategies, which never reach our strategy.
  const backoff = job.opts.backoff === undefined ? undefined : Backoffs.normalize(job.opts.backoff);
  if (!backoff) return 0;
  if (backoff.type in Backoffs.builtinStrategies) {
    const delay = Backoffs.calculate(backoff, job.attemptsMade + 1, err as Error, job);
    return typeof delay === 'number' ? delay : 0;
  }
  return undefined;
}

function previousDelayOf(job: AnyJob, history: StartHistory | undefined): number | undefined {
  const fromRow = history?.lastRow?.delayMs;
  if (fromRow !== undefined && fromRow !== null) return fromRow;
  // The job hash's delay is the one chosen before this attempt (BullMQ stores it on retry).
  return job.attemptsMade > 0 && job.delay > 0 ? job.delay : undefined;
}


function withStackOf(error: Error, original: unknown): Error {
  if (original instanceof Error && original.stack) error.stack = original.stack;
  return error;
}
