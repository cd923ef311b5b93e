// One attempt of one job, from lease to outcome: find the handler, check the payload, take a slot
// under the process-wide cap, check the deadline, run the handler under its timeout, and on
// failure classify the error, plan the retry (deadline, retry budget), and record the attempt row
// and its event in one Redis call before BullMQ records the outcome. The attempt runs inside its
// CONSUMER span (attempt-trace.ts); attempt-start.ts looks at the job's earlier starts first.
import {
  CancelledError,
  PermanentError,
  classifyError,
  publishLaneEvent,
  recordAttempt,
  unwrapJobData,
  LANE_EVENT,
  type JobMeta,
  type RetryBudgetDecision,
} from '@bullpen/core';
import { Backoffs, DelayedError, UnrecoverableError } from 'bullmq';
import { AttemptAbort } from './attempt-abort';
import { AttemptDebugLog } from './attempt-debug-log';
import type { AnyJob, AttemptDeps } from './attempt-deps';
import { detectReclaim, handBack, readHistory } from './attempt-start';
import { AttemptTrace } from './attempt-trace';
import type { AttemptRef, AttemptTimings } from './events';
import { attemptRetryOf, emitFailure, type FailedAttempt } from './failure-events';
import { callHandler, type HandlerCallDeps } from './handler-call';
import { cancelledError } from './timeout';
import { countUncountedStart, eligibleAt, isFirstStart, type StartHistory } from './job-history';
import { planRetry } from './retry-plan';

export interface CompletedAttempt {
  ref: AttemptRef;
  timings: AttemptTimings;
  waitMs: number;
}

export class AttemptRunner {
  /** Keyed by the error handed to BullMQ, which passes the same object to the backoff strategy
   * and the 'failed' event. */
  private readonly failures = new WeakMap<object, FailedAttempt>();
  /** Keyed by the Job object, which BullMQ passes to the 'completed' event. */
  private readonly completions = new WeakMap<object, CompletedAttempt>();
  /** How to stop each attempt running now, by job id (cancellations). */
  private readonly aborts = new Map<string, AttemptAbort>();

  private readonly callDeps: HandlerCallDeps;
  private readonly debugLog: AttemptDebugLog;
  /** Handlers of this lane holding a slot now. */
  private active = 0;

  constructor(private readonly deps: AttemptDeps) {
    const { config, logger, policy, pool, emit, abandon, ignoredSignalTotal } = deps;
    this.callDeps = { logger, escalationFactor: policy.timeoutEscalationFactor, pool, emit, abandon, ignoredSignalTotal };
    this.debugLog = new AttemptDebugLog(logger, { include: config.logJobPayloads, redactKeys: config.logRedactKeys });
  }

  failureOf(err: unknown): FailedAttempt | undefined {
    return typeof err === 'object' && err !== null ? this.failures.get(err) : undefined;
  }

  completionOf(job: object): CompletedAttempt | undefined {
    return this.completions.get(job);
  }

  /** Cancels the attempt of `jobId` running here: its signal aborts and it fails with a
   * CancelledError. False when no attempt of that job runs here. */
  cancel(jobId: string, reason: string): boolean {
    const abort = this.aborts.get(jobId);
    if (!abort) return false;
    abort.abort(cancelledError(reason));
    return true;
  }

  /** The BullMQ processor. `token` is the job's lock token. */
  async process(job: AnyJob, token: string | undefined): Promise<unknown> {
    if (this.deps.intakeStopped()) {
      const handedBack = await handBack(this.deps, job, token);
      if (handedBack) throw handedBack;
    }
    const leasedAt = Date.now();
    const abort = new AttemptAbort();
    const { data, meta } = unwrapJobData(job.data);
    const ref: AttemptRef = {
      lane: this.deps.lane,
      jobId: job.id ?? '',
      jobName: job.name,
      tenant: meta?.tenant,
      attempt: job.attemptsMade + 1,
      maxAttempts: Math.max(1, job.opts.attempts ?? 1),
      workerId: this.deps.config.workerId,
    };
    // Everything the attempt does runs inside its span: log lines carry its ids and the handler's
    // outbound calls are its children.
    const attemptTrace = AttemptTrace.start(ref, meta?.trace);
    this.aborts.set(ref.jobId, abort);
    try {
      return await attemptTrace.run(() => this.attempt(job, token, abort, { ref, data, meta, leasedAt, trace: attemptTrace }));
    } finally {
      this.aborts.delete(ref.jobId);
      attemptTrace.end();
    }
  }

  /** Handlers of this lane holding a slot now. */
  get activeHandlers(): number {
    return this.active;
  }

  private async attempt(
    job: AnyJob,
    token: string | undefined,
    abort: AttemptAbort,
    { ref, data, meta, leasedAt, trace }: { ref: AttemptRef; data: unknown; meta: JobMeta | undefined; leasedAt: number; trace: AttemptTrace },
  ): Promise<unknown> {
    const { policy, registry, slots } = this.deps;
    const startedAt = job.processedOn ?? leasedAt;
    const first = isFirstStart(job);
    if (first) this.deps.budget.recordFirstAttempt();
    // Read while the handler runs; awaited only when the attempt is recorded.
    const history = first ? undefined : readHistory(this.deps, ref.jobId);
    this.deps.onStart(ref.jobId, job.attemptsStarted, leasedAt);
    if (this.deps.listens('job:started')) {
      this.deps.emit('job:started', { ...ref, enqueuedAt: job.timestamp, startedAt: leasedAt, attemptsStarted: job.attemptsStarted });
    }
    if (history) void history.then((h) => detectReclaim(this.deps, job, ref, h));
    this.debugLog.started(ref, data);

    const timings: AttemptTimings = { durationMs: 0, slotWaitMs: null, handlerMs: null };
    try {
      const handler = registry.get(job.name);
      if (!handler) {
        throw new PermanentError(`no handler registered for job name "${job.name}" in lane "${ref.lane}"`, 'unknown_handler');
      }
      const payload = handler.parse(data);
      // A free slot is taken without a promise; only a wait needs the attempt's signal.
      if (abort.aborted) throw slotWaitCancelled();
      const release =
        slots.tryAcquire() ??
        (await slots.acquire(abort.signal).catch(() => {
          throw slotWaitCancelled();
        }));
      timings.slotWaitMs = Date.now() - leasedAt;
      trace.slotAcquired(timings.slotWaitMs);
      this.active += 1;
      try {
        const deadlineAt = this.deadlineOf(job, meta?.deadlineAt);
        if (deadlineAt !== undefined && Date.now() >= deadlineAt) throw new PermanentError('deadline_exceeded', 'deadline_exceeded');
        const handlerStart = Date.now();
        trace.executionStarted();
        try {
          const timeoutMs = meta?.timeoutMs ?? policy.timeoutMs;
          const result = await callHandler(this.callDeps, job, handler, payload, ref, timeoutMs, abort, trace);
          timings.handlerMs = Date.now() - handlerStart;
          timings.durationMs = Date.now() - leasedAt;
          trace.executionSucceeded(timings.handlerMs);
          const waitMs = Math.max(0, startedAt - eligibleAt(job, history ? await history : undefined));
          this.completions.set(job, { ref, timings, waitMs });
          this.debugLog.succeeded(ref, timings, result);
          return result;
        } finally {
          timings.handlerMs ??= Date.now() - handlerStart;
        }
      } finally {
        this.active -= 1;
        release();
      }
    } catch (err) {
      timings.durationMs = Date.now() - leasedAt;
      throw await this.recordFailure(job, token, { ref, timings, startedAt, trace }, history, meta?.deadlineAt, err);
    } finally {
      this.deps.onEnd(ref.jobId);
    }
  }

  /** BullMQ's `settings.backoffStrategy`: the delay was decided when the attempt failed. */
  delayFor(err: unknown): number {
    const plan = this.failureOf(err)?.plan;
    if (plan?.kind === 'retry') return plan.delayMs;
    // Not an error this runner threw (BullMQ never calls this for jobs that will not retry).
    return 0;
  }

  private deadlineOf(job: AnyJob, metaDeadlineAt: number | undefined): number | undefined {
    const { deadlineMs } = this.deps.policy;
    return metaDeadlineAt ?? (deadlineMs !== undefined ? job.timestamp + deadlineMs : undefined);
  }

  /** Classifies the failure, plans the retry, records the attempt row and its event (one Redis
   * call) and returns the error to hand to BullMQ. */
  private async recordFailure(
    job: AnyJob,
    token: string | undefined,
    { ref, timings, startedAt, trace }: { ref: AttemptRef; timings: AttemptTimings; startedAt: number; trace: AttemptTrace },
    pendingHistory: Promise<StartHistory | undefined> | undefined,
    metaDeadlineAt: number | undefined,
    err: unknown,
  ): Promise<Error> {
    const { policy, config, lane, redis, logger } = this.deps;
    const classification = classifyError(err, policy.errorRules);
    const message = messageOf(err);
    const history = pendingHistory ? await pendingHistory : undefined;
    const deadlineAt = this.deadlineOf(job, metaDeadlineAt);
    const bullmqDelayMs = this.bullmqDelay(job, err);
    const plan = await planRetry({
      classification,
      attemptsMade: job.attemptsMade,
      maxAttempts: ref.maxAttempts,
      retry: job.attemptsMade + (history?.uncountedStarts ?? 0),
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
    const waitMs = Math.max(0, startedAt - eligibleAt(job, history));
    const retry = attemptRetryOf({ ref, classification, plan, strategy: policy.backoff.strategy });
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
        ...(job.opts.keepLogs !== undefined ? { keepLogs: job.opts.keepLogs } : {}),
      }),
    ];
    if (plan.budget) {
      const refusal = { action: plan.budget.action, errorClass: classification.errorClass, retriesInWindow: plan.budget.retriesInWindow, allowedInWindow: plan.budget.allowedInWindow };
      this.deps.emit('job:retry-budget-exhausted', { ...ref, ...refusal });
      const subject = { name: ref.jobName, ...(ref.tenant !== undefined ? { tenant: ref.tenant } : {}), attempt: ref.attempt, worker: ref.workerId };
      const ev = { event: LANE_EVENT.retryBudgetExhausted, jobId: ref.jobId, ...refusal, ...subject };
      writes.push(publishLaneEvent(redis, config.prefix, lane, ev, config.eventsMaxLen));
    }
    if (!consumesAttempt) writes.push(countUncountedStart(redis, config.prefix, lane, ref.jobId));
    // Issued together, so they share one round trip; the row and its event are one script call.
    const results = await Promise.allSettled(writes);
    for (const result of results) {
      if (result.status === 'rejected') {
        logger.warn('could not record the failed attempt', { job_id: ref.jobId, error: (result.reason as Error)?.message });
      }
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
      thrown = err instanceof Error ? err : new Error(message);
    } else {
      thrown = new UnrecoverableError(plan.failedReason ?? message);
      if (err instanceof Error && err.stack) thrown.stack = err.stack;
    }
    this.failures.set(thrown, failed);
    return thrown;
  }

  /** Asks the budget; Redis trouble lets the retry through rather than failing healthy jobs. */
  private async tryRetry(ref: AttemptRef): Promise<RetryBudgetDecision> {
    try {
      return await this.deps.budget.tryRetry();
    } catch (err) {
      this.deps.logger.warn('retry budget unavailable; allowing the retry', { job_id: ref.jobId, error: (err as Error).message });
      return { granted: true, retriesInWindow: 0, allowedInWindow: 0 };
    }
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

  /** The delay BullMQ itself will use, for jobs that do not carry bullpen's backoff. */
  private bullmqDelay(job: AnyJob, err: unknown): number | undefined {
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
}

function previousDelayOf(job: AnyJob, history: StartHistory | undefined): number | undefined {
  const fromRow = history?.lastRow?.delayMs;
  if (fromRow !== undefined && fromRow !== null) return fromRow;
  // The job hash's delay is the one chosen before this attempt (BullMQ stores it on retry).
  return job.attemptsMade > 0 && job.delay > 0 ? job.delay : undefined;
}

function slotWaitCancelled(): CancelledError {
  return new CancelledError('job cancelled while active: it was waiting for a handler slot');
}

function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message || err.name;
  if (typeof err === 'string') return err;
  try {
    return JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}
