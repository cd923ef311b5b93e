// One attempt of one job, from lease to outcome: find the handler, check the payload, take a slot
// under the process-wide cap, check the deadline, run the handler under its timeout, and on
// failure classify the error, decide the retry and append the attempt row to the job's log.
import {
  CancelledError,
  PermanentError,
  classifyError,
  formatAttemptLogRow,
  unwrapJobData,
  type BullpenConfig,
  type Classification,
  type LanePolicy,
  type Logger,
} from '@bullpen/core';
import { Backoffs, UnrecoverableError, type Job } from 'bullmq';
import type { AttemptRef, AttemptTimings, WorkerEventMap } from './events';
import type { Handler, HandlerContext } from './handler';
import type { RandomSource } from './random';
import type { HandlerRegistry } from './registry';
import { decideRetry, type RetryDecision } from './retry-decision';
import type { Semaphore } from './semaphore';
import { runGuarded } from './timeout';

export interface AttemptDeps {
  config: BullpenConfig;
  lane: string;
  policy: LanePolicy;
  registry: HandlerRegistry;
  /** The process-wide handler cap, shared by all lanes. */
  slots: Semaphore;
  logger: Logger;
  random: RandomSource;
  emit<K extends keyof WorkerEventMap>(event: K, payload: WorkerEventMap[K]): void;
  /** Counts a handler abandoned for ignoring its signal; returns the process total. */
  countIgnoredSignal(): number;
}

export interface FailedAttempt {
  ref: AttemptRef;
  timings: AttemptTimings;
  classification: Classification;
  decision: RetryDecision;
  message: string;
}

export interface CompletedAttempt {
  ref: AttemptRef;
  timings: AttemptTimings;
}

type AnyJob = Job<unknown, unknown, string>;

export class AttemptRunner {
  /** Keyed by the error handed to BullMQ, which passes the same object to the backoff strategy
   * and the 'failed' event. */
  private readonly failures = new WeakMap<object, FailedAttempt>();
  /** Keyed by the Job object, which BullMQ passes to the 'completed' event. */
  private readonly completions = new WeakMap<object, CompletedAttempt>();

  constructor(private readonly deps: AttemptDeps) {}

  failureOf(err: unknown): FailedAttempt | undefined {
    return typeof err === 'object' && err !== null ? this.failures.get(err) : undefined;
  }

  completionOf(job: object): CompletedAttempt | undefined {
    return this.completions.get(job);
  }

  /** The BullMQ processor. `cancelSignal` is BullMQ's per-job signal (Worker.cancelJob). */
  async process(job: AnyJob, cancelSignal: AbortSignal | undefined): Promise<unknown> {
    const { config, lane, policy, registry, slots } = this.deps;
    const leasedAt = Date.now();
    const { data, meta } = unwrapJobData(job.data);
    const ref: AttemptRef = {
      lane,
      jobId: job.id ?? '',
      jobName: job.name,
      tenant: meta?.tenant,
      attempt: job.attemptsMade + 1,
      maxAttempts: Math.max(1, job.opts.attempts ?? 1),
      workerId: config.workerId,
    };
    this.deps.emit('job:started', { ...ref, enqueuedAt: job.timestamp, startedAt: leasedAt });
    const timings: AttemptTimings = { durationMs: 0, slotWaitMs: null, handlerMs: null };
    try {
      const handler = registry.get(job.name);
      if (!handler) {
        throw new PermanentError(`no handler registered for job name "${job.name}" in lane "${lane}"`, 'unknown_handler');
      }
      const payload = handler.parse(data);
      const release = await slots.acquire(cancelSignal).catch(() => {
        throw new CancelledError('job cancelled while active: it was waiting for a handler slot');
      });
      timings.slotWaitMs = Date.now() - leasedAt;
      try {
        const deadlineAt = meta?.deadlineAt ?? (policy.deadlineMs !== undefined ? job.timestamp + policy.deadlineMs : undefined);
        if (deadlineAt !== undefined && Date.now() >= deadlineAt) throw new PermanentError('deadline_exceeded', 'deadline_exceeded');
        const handlerStart = Date.now();
        try {
          const result = await this.runHandler(job, handler, payload, ref, meta?.timeoutMs ?? policy.timeoutMs, cancelSignal);
          timings.handlerMs = Date.now() - handlerStart;
          timings.durationMs = Date.now() - leasedAt;
          this.completions.set(job, { ref, timings });
          return result;
        } finally {
          timings.handlerMs ??= Date.now() - handlerStart;
        }
      } finally {
        release();
      }
    } catch (err) {
      timings.durationMs = Date.now() - leasedAt;
      throw await this.recordFailure(job, ref, timings, err);
    }
  }

  /** Runs the handler under its timeout, with escalation and cancellation (see timeout.ts). */
  private async runHandler(
    job: AnyJob,
    handler: Handler,
    payload: unknown,
    ref: AttemptRef,
    timeoutMs: number,
    cancelSignal: AbortSignal | undefined,
  ): Promise<unknown> {
    const logger = this.deps.logger.child({ jobId: ref.jobId, attempt: ref.attempt });
    const startedAt = Date.now();
    let attemptOver = false;
    try {
      return await runGuarded(
        (signal) => {
          const ctx: HandlerContext = {
            jobId: ref.jobId,
            jobName: ref.jobName,
            lane: ref.lane,
            attempt: ref.attempt,
            maxAttempts: ref.maxAttempts,
            tenant: ref.tenant,
            signal,
            logger,
            // A handler abandoned after its timeout must not write to a job it no longer owns.
            progress: (value) => (attemptOver ? Promise.resolve() : job.updateProgress(value)),
          };
          return handler.run(payload, ctx);
        },
        {
          timeoutMs,
          escalationFactor: this.deps.policy.timeoutEscalationFactor,
          label: `handler "${job.name}"`,
          ...(cancelSignal ? { cancelSignal } : {}),
          onTimeout: () => {
            const elapsedMs = Date.now() - startedAt;
            logger.warn('handler timed out; its abort signal was fired', { jobName: job.name, timeoutMs, elapsedMs });
            this.deps.emit('handler:timeout-warning', { ...ref, timeoutMs, elapsedMs });
          },
          onEscalated: (cause, elapsedMs) => {
            const ignoredSignalTotal = this.deps.countIgnoredSignal();
            logger.warn('handler ignored its abort signal; attempt failed and its slot freed', {
              jobName: job.name,
              cause,
              timeoutMs,
              elapsedMs,
              ignoredSignalTotal,
            });
            this.deps.emit('handler:timeout-escalated', { ...ref, timeoutMs, elapsedMs, cause, ignoredSignalTotal });
          },
        },
      );
    } finally {
      attemptOver = true;
    }
  }

  /** BullMQ's `settings.backoffStrategy`: the delay was decided when the attempt failed. */
  delayFor(attemptsMade: number, err: unknown): number {
    const decided = this.failureOf(err)?.decision.delayMs;
    if (decided !== undefined && decided !== null) return decided;
    // Not an error this runner threw; fall back to the lane policy.
    return decideRetry({
      classification: { errorClass: 'unknown', retryable: true },
      attemptsMade: Math.max(0, attemptsMade - 1),
      maxAttempts: Number.POSITIVE_INFINITY,
      backoff: this.deps.policy.backoff,
      random: this.deps.random,
    }).delayMs ?? 0;
  }

  /** Classifies the failure, decides the retry, appends the attempt row (one Redis call) and
   * returns the error to hand to BullMQ: UnrecoverableError when no retry may follow. */
  private async recordFailure(job: AnyJob, ref: AttemptRef, timings: AttemptTimings, err: unknown): Promise<Error> {
    const classification = classifyError(err, this.deps.policy.errorRules);
    const message = messageOf(err);
    const decision = this.decide(job, ref, classification, err);
    try {
      await job.log(
        formatAttemptLogRow({
          attempt: ref.attempt,
          errorClass: classification.errorClass,
          message,
          delayMs: decision.delayMs,
          worker: ref.workerId,
          ts: Date.now(),
        }),
      );
    } catch (logErr) {
      this.deps.logger.warn('could not append the attempt row to the job log', {
        jobId: ref.jobId,
        error: (logErr as Error).message,
      });
    }
    let thrown: Error;
    if (classification.retryable) {
      thrown = err instanceof Error ? err : new Error(message);
    } else {
      thrown = new UnrecoverableError(message);
      if (err instanceof Error && err.stack) thrown.stack = err.stack;
    }
    this.failures.set(thrown, { ref, timings, classification, decision, message });
    this.deps.logger.debug('attempt failed', {
      jobId: ref.jobId,
      attempt: ref.attempt,
      errorClass: classification.errorClass,
      willRetry: decision.willRetry,
      delayMs: decision.delayMs,
    });
    return thrown;
  }

  private decide(job: AnyJob, ref: AttemptRef, classification: Classification, err: unknown): RetryDecision {
    const decision = decideRetry({
      classification,
      attemptsMade: job.attemptsMade,
      maxAttempts: ref.maxAttempts,
      backoff: this.deps.policy.backoff,
      // The job hash's delay is the one chosen before this attempt (BullMQ stores it on retry).
      ...(job.attemptsMade > 0 && job.delay > 0 ? { previousDelayMs: job.delay } : {}),
      random: this.deps.random,
    });
    if (!decision.willRetry) return decision;
    // Jobs added by plain BullMQ clients may carry no backoff (BullMQ retries at once) or one of
    // BullMQ's built-in strategies, which never reach our strategy: record what BullMQ will do.
    const backoff = job.opts.backoff === undefined ? undefined : Backoffs.normalize(job.opts.backoff);
    if (!backoff) return { willRetry: true, delayMs: 0 };
    if (backoff.type in Backoffs.builtinStrategies) {
      const delay = Backoffs.calculate(backoff, job.attemptsMade + 1, err as Error, job);
      return { willRetry: true, delayMs: typeof delay === 'number' ? delay : 0 };
    }
    return decision;
  }
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
