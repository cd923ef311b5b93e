// One attempt of one job, from lease to outcome: find the handler, check the payload, take a slot
// under the process-wide cap, check the deadline, take a ready thread in an isolated lane (so that
// the timeout measures the handler, not the thread's start-up), run the handler under its timeout
// and keep what its success needs for BullMQ's 'completed' event. Before it runs, attempt-start.ts
// looks at the job's earlier starts; on failure, attempt-failure.ts plans the retry and records the
// attempt before BullMQ records the outcome. The attempt runs inside its CONSUMER span (attempt-trace.ts).
import { CancelledError, MAX_TIMER_MS, PermanentError, TimeoutError, unwrapJobData, type JobMeta } from '@bullpen/core';
import { AttemptAbort } from './attempt-abort';
import { AttemptDebugLog } from './attempt-debug-log';
import type { AnyJob, AttemptDeps } from './attempt-deps';
import { FailureRecorder } from './attempt-failure';
import { detectReclaim, handBack, readHistory } from './attempt-start';
import { admitDeferredRetry, BudgetDeferredError } from './budget-gate';
import { AttemptTrace } from './attempt-trace';
import { EarlyCancels } from './early-cancels';
import type { AttemptRef, AttemptTimings } from './events';
import type { FailedAttempt } from './failure-events';
import { callHandler, type HandlerCallDeps } from './handler-call';
import { ThreadPoolClosedError, type ThreadLease, type ThreadPool } from './isolation/thread-pool';
import { elapsedMs } from './elapsed';
import { eligibleAt, isFirstStart } from './job-history';
import { ShutdownHandBacks } from './shutdown-hand-back';
import { resultJson } from './stored-json';
import { cancelledError } from './timeout';

export interface CompletedAttempt {
  ref: AttemptRef;
  timings: AttemptTimings;
  waitMs: number;
}

export class AttemptRunner {
  /** Keyed by the Job object, which BullMQ passes to the 'completed' event. */
  private readonly completions = new WeakMap<object, CompletedAttempt>();
  /** How to stop each attempt running now, by job id (cancellations). */
  private readonly aborts = new Map<string, AttemptAbort>();
  /** Cancellations that came before their attempt registered in `aborts`. */
  private readonly earlyCancels: EarlyCancels;

  private readonly callDeps: HandlerCallDeps;
  private readonly debugLog: AttemptDebugLog;
  private readonly failures: FailureRecorder;
  /** Handlers of this lane holding a slot now. */
  private active = 0;
  /** The attempts running now, for a shutdown to stop and hand their jobs back. */
  private readonly shutdown: ShutdownHandBacks;

  constructor(private readonly deps: AttemptDeps) {
    const { config, logger, policy, emit, abandon, ignoredSignalTotal } = deps;
    this.callDeps = { logger, escalationFactor: policy.timeoutEscalationFactor, emit, abandon, ignoredSignalTotal };
    this.debugLog = new AttemptDebugLog(logger, { include: config.logJobPayloads, redactKeys: config.logRedactKeys });
    this.failures = new FailureRecorder(deps, this.debugLog);
    this.earlyCancels = new EarlyCancels({ ttlMs: deps.policy.lockDurationMs });
    this.shutdown = new ShutdownHandBacks(deps);
  }

  failureOf(err: unknown): FailedAttempt | undefined {
    return this.failures.failureOf(err);
  }

  completionOf(job: object): CompletedAttempt | undefined {
    return this.completions.get(job);
  }

  /** Cancels the attempt of `jobId` running here: its signal aborts and it fails with a
   * CancelledError. False when no attempt of that job runs here; the cancellation is then kept
   * briefly for an attempt of the job that starts here next (early-cancels.ts). */
  cancel(jobId: string, reason: string): boolean {
    const abort = this.aborts.get(jobId);
    if (!abort) {
      this.earlyCancels.note(jobId, reason);
      return false;
    }
    abort.abort(cancelledError(reason));
    return true;
  }

  /**
   * The job's lock has gone to another worker (this one could not renew it in time: a paused
   * process, a blocked event loop, Redis out of reach past lockDurationMs). The job may be running
   * there already, so its handler here is asked to stop; nothing it does is recorded.
   */
  leaseLost(jobId: string): boolean {
    const abort = this.aborts.get(jobId);
    if (!abort) return false;
    abort.abort(new LeaseLostError(`job ${jobId}: this worker lost its lock; another worker may be running it`));
    return true;
  }

  /** The BullMQ processor. `token` is the job's lock token. */
  async process(job: AnyJob, token: string | undefined): Promise<unknown> {
    const handBackFor = this.deps.intakeStopped() ? 'intake_stopped' : this.deps.slots.leasedBeyondShare() ? 'beyond_share' : undefined;
    if (handBackFor) {
      const handedBack = await handBack(this.deps, job, token, handBackFor);
      if (handedBack) throw handedBack;
    }
    // A wall-clock time, for the job's history and events; durations are measured from `leasedClock`.
    const leasedAt = Date.now();
    const leasedClock = performance.now();
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
    this.shutdown.track({ job, token, ref, abort });
    // In the same turn as the registration, so that a cancel message is either kept before it or
    // finds the attempt after it: none comes in between.
    const early = this.earlyCancels.take(ref.jobId, job.processedOn ?? 0);
    if (early !== undefined) abort.abort(cancelledError(early));
    try {
      return await attemptTrace.run(() => this.attempt(job, token, abort, { ref, data, meta, leasedAt, leasedClock, trace: attemptTrace }));
    } finally {
      this.aborts.delete(ref.jobId);
      this.shutdown.untrack(ref.jobId);
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
    {
      ref,
      data,
      meta,
      leasedAt,
      leasedClock,
      trace,
    }: { ref: AttemptRef; data: unknown; meta: JobMeta | undefined; leasedAt: number; leasedClock: number; trace: AttemptTrace },
  ): Promise<unknown> {
    const { policy, registry, slots } = this.deps;
    const startedAt = job.processedOn ?? leasedAt;
    const first = isFirstStart(job);
    if (first) this.deps.budget.recordFirstAttempt();
    // Read while the handler runs; awaited only when the attempt is recorded.
    const history = first ? undefined : readHistory(this.deps, ref.jobId);
    this.deps.onStart(ref.jobId, job.attemptsStarted);
    if (this.deps.listens('job:started')) {
      this.deps.emit('job:started', { ...ref, enqueuedAt: job.timestamp, startedAt: leasedAt, attemptsStarted: job.attemptsStarted });
    }
    if (history) {
      void history.then((h) => {
        detectReclaim(this.deps, job, ref, h);
        // Cancelled while its earlier start ran, and not stopped then (that worker died, or the
        // cancel came as that attempt failed): this start ends as the cancellation asked.
        if (h?.cancelRequested) abort.abort(cancelledError('requested while the job was active before'));
      });
    }
    this.debugLog.started(ref, data);

    const timings: AttemptTimings = { durationMs: 0, slotWaitMs: null, handlerMs: null };
    try {
      // Cancelled before it began: it ends as the cancellation asked, whatever its handler or payload.
      if (abort.reason instanceof CancelledError) throw abort.reason;
      // A job hash Redis evicted (a maxmemory-policy other than noeviction) is left an id with no fields.
      if (job.name === undefined) {
        throw new PermanentError(
          `job ${ref.jobId} of lane "${ref.lane}" has no name or data in Redis: its hash was lost, most likely evicted ` +
            "(Redis's maxmemory-policy must be noeviction)",
          'unknown',
        );
      }
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
      timings.slotWaitMs = elapsedMs(leasedClock);
      trace.slotAcquired(timings.slotWaitMs);
      this.active += 1;
      try {
        // A job started before may have been cancelled meanwhile: known before its handler runs.
        const started = history ? await history : undefined;
        const deadlineAt = this.deadlineOf(job, meta?.deadlineAt);
        if (deadlineAt !== undefined && Date.now() >= deadlineAt) throw new PermanentError('deadline_exceeded', 'deadline_exceeded');
        // A retry the budget deferred runs only once the budget grants it; a cancelled one ends
        // as the cancellation asked, without waiting for budget.
        if (!abort.aborted) await admitDeferredRetry(this.deps, job, token, ref, started, deadlineAt, trace);
        const thread = this.deps.pool ? await this.threadFor(this.deps.pool, ref, abort, deadlineAt, trace) : undefined;
        // The deadline is a wall-clock time (set by the API's host); the handler's run is timed on
        // the monotonic clock, which a step of the wall clock (NTP, a VM resumed) does not move.
        const handlerStart = Date.now();
        const handlerClock = performance.now();
        trace.executionStarted();
        // The deadline bounds the running attempt too, as a schedule-to-close timeout does: it
        // stops at whichever of its timeout and the deadline comes first.
        const configuredTimeoutMs = meta?.timeoutMs ?? policy.timeoutMs;
        const untilDeadlineMs = deadlineAt === undefined ? Infinity : Math.max(1, deadlineAt - handlerStart);
        const timeoutMs = Math.min(configuredTimeoutMs, untilDeadlineMs);
        try {
          const result = await callHandler(this.callDeps, job, handler, payload, ref, timeoutMs, abort, trace, thread).catch((err: unknown) => {
            if (err instanceof TimeoutError && timeoutMs < configuredTimeoutMs) {
              throw new PermanentError(`deadline_exceeded: the job's deadline passed while attempt ${ref.attempt} ran`, 'deadline_exceeded', { cause: err });
            }
            throw err;
          });
          resultJson(handler.name, result);
          timings.handlerMs = elapsedMs(handlerClock);
          timings.durationMs = elapsedMs(leasedClock);
          trace.executionSucceeded(timings.handlerMs);
          const waitMs = Math.max(0, startedAt - eligibleAt(job, history ? await history : undefined, meta?.redrivenAt));
          this.completions.set(job, { ref, timings, waitMs });
          this.debugLog.succeeded(ref, timings, result);
          return result;
        } finally {
          timings.handlerMs ??= elapsedMs(handlerClock);
          this.deps.emit('handler:finished', { lane: ref.lane, handlerMs: timings.handlerMs, timeoutMs: configuredTimeoutMs });
        }
      } finally {
        this.active -= 1;
        release();
      }
    } catch (err) {
      // Moved to the delayed set already, to ask the budget again.
      if (err instanceof BudgetDeferredError) {
        this.shutdown.untrack(ref.jobId);
        throw err;
      }
      // The shutdown stopped the handler: it did not fail, and nothing is recorded.
      if (err instanceof ThreadPoolClosedError) throw await this.shutdown.handBack(job, token, ref, 'isolated');
      if (this.shutdown.stopped(ref.jobId, abort)) throw await this.shutdown.handBack(job, token, ref, 'stopped');
      this.shutdown.untrack(ref.jobId);
      timings.durationMs = elapsedMs(leasedClock);
      const deadlineAt = this.deadlineOf(job, meta?.deadlineAt);
      throw await this.failures.record(job, token, { ref, timings, startedAt, trace }, history, deadlineAt, err);
    } finally {
      this.deps.onEnd(ref.jobId);
    }
  }

  /**
   * Takes a ready thread of the isolated lane's pool for the handler. A thread still starting (the
   * lane's first ones, or the successor of one terminated with its handler) is waited for before the
   * handler's timeout starts: starting one takes seconds on a busy machine, and a timeout shorter
   * than that could otherwise never be met. The pool bounds the wait by its threadStartTimeoutMs
   * (a ThreadStartError); the job's deadline and a cancellation bound it too.
   */
  private async threadFor(pool: ThreadPool, ref: AttemptRef, abort: AttemptAbort, deadlineAt: number | undefined, trace: AttemptTrace): Promise<ThreadLease> {
    const waitStart = Date.now();
    const waitClock = performance.now();
    let thread = pool.tryAcquire();
    if (!thread) {
      if (abort.aborted) throw threadWaitStopped(abort.reason);
      const waiting = new AbortController();
      const onAbort = () => waiting.abort(threadWaitStopped(abort.reason));
      abort.signal.addEventListener('abort', onAbort, { once: true });
      const deadlineTimer =
        deadlineAt === undefined
          ? undefined
          : setTimeout(
              () =>
                waiting.abort(
                  new PermanentError(`deadline_exceeded: the job's deadline passed while attempt ${ref.attempt} waited for a handler thread to start`, 'deadline_exceeded'),
                ),
              Math.min(MAX_TIMER_MS, Math.max(0, deadlineAt - waitStart)),
            );
      try {
        thread = await pool.acquire(waiting.signal);
      } finally {
        clearTimeout(deadlineTimer);
        abort.signal.removeEventListener('abort', onAbort);
      }
    }
    trace.threadAcquired(elapsedMs(waitClock));
    return thread;
  }

  /**
   * The shutdown's grace period ended with attempts still running: their handlers' signals abort
   * (an isolated lane's handlers are stopped instead when its thread pool closes). A handler that
   * stops has its job handed back to the wait list at once; see handBackStopped for the others.
   */
  stopForShutdown(): void {
    if (!this.deps.pool) this.shutdown.stopAll();
  }

  /**
   * Hands back the jobs of the attempts the shutdown stopped: none of them failed, so nothing is
   * recorded, and each job goes back to the wait list without using an attempt or counting a
   * stall, as a job leased during shutdown does, for this worker's successor or another one. An
   * in-process handler that ignores its signal runs on until the process exits; its job is handed
   * back now, so call this last before the lane's connections close. Resolves once all are back
   * (or, when one cannot be moved, left to be reclaimed once its lock expires). Called after the
   * lane's thread pool has closed: the pool fails its calls before its threads exit, so every
   * isolated attempt has begun its hand-back by then.
   */
  handBackStopped(): Promise<void> {
    return this.shutdown.settle();
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
}

/** The reason an attempt's signal aborts when its worker lost the job's lock. */
export class LeaseLostError extends Error {
  override readonly name = 'LeaseLostError';
}

function slotWaitCancelled(): CancelledError {
  return new CancelledError('job cancelled while active: it was waiting for a handler slot');
}

/** The attempt was stopped (cancelled, or its lock lost) while its handler's thread was starting. */
function threadWaitStopped(reason: unknown): Error {
  const cancelled = reason instanceof CancelledError ? reason : reason instanceof Error ? undefined : cancelledError(reason);
  return cancelled ? new CancelledError(`${cancelled.message} (it was waiting for a handler thread to start)`) : (reason as Error);
}
