// One call of a job's handler under its attempt's timeout, with escalation and cancellation (see
// timeout.ts): in process, or on a ready thread of the lane's pool when the lane is isolated (the
// attempt takes the thread first, so its start-up is not the handler's time). At the hard stage an
// in-process handler can only be abandoned (and keeps running until it stops by itself); an
// isolated one is really stopped by terminating its thread.
import { injectTraceContext, unwrapJobData, type Logger } from '@bullpen/core';
import type { Job } from 'bullmq';
import type { AttemptAbort } from './attempt-abort';
import type { AttemptTrace } from './attempt-trace';
import type { AttemptRef, WorkerEventMap } from './events';
import type { Handler, HandlerContext } from './handler';
import { elapsedMs as elapsedSince } from './elapsed';
import { handlerLogger } from './handler-logger';
import type { IsolatedRun, ThreadLease } from './isolation/thread-pool';
import { storedProgress } from './stored-json';
import { runGuarded } from './timeout';

export interface HandlerCallDeps {
  logger: Logger;
  escalationFactor: number;
  emit<K extends keyof WorkerEventMap>(event: K, payload: WorkerEventMap[K]): void;
  /** Counts an in-process handler abandoned for ignoring its signal; `stillRunning` settles when it
   * finally stops. Returns the process total of abandoned handlers. */
  abandon(stillRunning: Promise<unknown>): number;
  /** The process total of abandoned handlers. */
  ignoredSignalTotal(): number;
}

export async function callHandler(
  deps: HandlerCallDeps,
  job: Job<unknown, unknown, string>,
  handler: Handler,
  /** What handler.parse made of the job's payload; an isolated handler's thread parses it again. */
  payload: unknown,
  ref: AttemptRef,
  timeoutMs: number,
  abort: AttemptAbort,
  trace?: AttemptTrace,
  /** In an isolated lane, the ready thread the handler runs on; released here if it is not used. */
  thread?: ThreadLease,
): Promise<unknown> {
  // A child logger costs an allocation per job; most attempts never log, so it is made on first use.
  let childLogger: Logger | undefined;
  const log = (): Logger => (childLogger ??= handlerLogger(deps.logger, { lane: ref.lane, job_id: ref.jobId, attempt: ref.attempt }));
  const isolated = thread !== undefined;
  const startedAt = performance.now();
  let attemptOver = false;
  // A handler abandoned after its timeout must not write to a job it no longer owns. What is written
  // is the value's JSON form, checked here as an isolated handler's thread checks it.
  const progress = (value: Parameters<HandlerContext['progress']>[0]): Promise<void> => {
    if (attemptOver) return Promise.resolve();
    try {
      return job.updateProgress(storedProgress(handler.name, value));
    } catch (err) {
      return Promise.reject(err);
    }
  };
  let running: Promise<unknown> = Promise.resolve();
  let isolatedRun: IsolatedRun | undefined;
  try {
    return await runGuarded(
      () => {
        if (thread) {
          const ctx = { jobId: ref.jobId, jobName: ref.jobName, lane: ref.lane, attempt: ref.attempt, maxAttempts: ref.maxAttempts, tenant: ref.tenant };
          // The attempt span is the active context here; the thread continues it.
          const carrier = trace ? injectTraceContext() : undefined;
          // The payload as the job stores it: what the schema's transforms made of it (a Buffer, a
          // URL) would arrive as plain data, so the thread runs the schema again.
          const raw = unwrapJobData(job.data).data;
          const task = carrier && Object.keys(carrier).length > 0 ? { name: handler.name, payload: raw, ctx, trace: carrier } : { name: handler.name, payload: raw, ctx };
          isolatedRun = thread.run(task, abort.signal, (value) => {
            progress(value).catch((err: unknown) => log().debug('progress update failed', { error: (err as Error).message }));
          });
          running = isolatedRun.result;
          return running;
        }
        const ctx = new AttemptContext(ref, abort, log, progress);
        running = Promise.resolve().then(() => handler.run(payload, ctx));
        return running;
      },
      {
        timeoutMs,
        escalationFactor: deps.escalationFactor,
        label: `handler "${job.name}"`,
        abort,
        onTimeout: () => {
          const elapsedMs = elapsedSince(startedAt);
          log().warn('handler timed out; its abort signal was fired', { job_name: job.name, timeout_ms: timeoutMs, elapsed_ms: elapsedMs });
          trace?.timeoutWarning(timeoutMs, elapsedMs);
          deps.emit('handler:timeout-warning', { ...ref, timeoutMs, elapsedMs, isolated });
        },
        onEscalated: (cause, elapsedMs) => {
          trace?.timeoutEscalated(cause, elapsedMs, isolatedRun !== undefined);
          if (isolatedRun) {
            void isolatedRun.terminate().catch((err: unknown) =>
              log().error('could not terminate an isolated handler thread', { error: (err as Error).message }),
            );
            log().warn('handler ignored its abort signal; its thread was terminated and its slot freed', {
              job_name: job.name,
              cause,
              timeout_ms: timeoutMs,
              elapsed_ms: elapsedMs,
            });
            deps.emit('handler:timeout-escalated', { ...ref, timeoutMs, elapsedMs, cause, ignoredSignalTotal: deps.ignoredSignalTotal(), isolated, terminated: true });
            return;
          }
          const ignoredSignalTotal = deps.abandon(running);
          log().warn('handler ignored its abort signal; attempt failed and its slot freed', {
            job_name: job.name,
            cause,
            timeout_ms: timeoutMs,
            elapsed_ms: elapsedMs,
            ignored_signal_total: ignoredSignalTotal,
          });
          deps.emit('handler:timeout-escalated', { ...ref, timeoutMs, elapsedMs, cause, ignoredSignalTotal, isolated, terminated: false });
        },
      },
    );
  } finally {
    attemptOver = true;
    // Not run when the attempt was stopped before the call began.
    thread?.release();
  }
}

/**
 * What an in-process handler is given. Every field is an own enumerable property, so that a handler
 * can spread it (`{ ...ctx, attempt: 1 }`) or pass it on whole, and nothing else is: the attempt's
 * internals are private fields.
 *
 * Its signal and logger are made on first read: most handlers never look at them. They are
 * accessors defined on each object with the same two getter functions, not getters in an object
 * literal: a literal's own getters are fresh closures for every attempt, and V8 keeps each such
 * object's accessors in a hidden class of its own, made in old space. That hidden class then held
 * the closures, and through them the attempt's job, past the scavenges they should have died in: in
 * a drain the worker promoted three times the memory bare BullMQ does, and spent twice its time in
 * GC. Shared getters keep one hidden class for all contexts; defining them costs about 0.25 µs an
 * attempt.
 */
class AttemptContext implements HandlerContext {
  readonly jobId: string;
  readonly jobName: string;
  readonly lane: string;
  readonly attempt: number;
  readonly maxAttempts: number;
  readonly tenant: string | undefined;
  readonly progress: HandlerContext['progress'];
  declare readonly signal: AbortSignal;
  declare readonly logger: Logger;
  readonly #abort: AttemptAbort;
  readonly #log: () => Logger;

  static readonly #signal: PropertyDescriptor = {
    get(this: AttemptContext): AbortSignal {
      return this.#abort.signal;
    },
    enumerable: true,
  };

  static readonly #logger: PropertyDescriptor = {
    get(this: AttemptContext): Logger {
      return this.#log();
    },
    enumerable: true,
  };

  constructor(ref: AttemptRef, abort: AttemptAbort, log: () => Logger, progress: HandlerContext['progress']) {
    this.jobId = ref.jobId;
    this.jobName = ref.jobName;
    this.lane = ref.lane;
    this.attempt = ref.attempt;
    this.maxAttempts = ref.maxAttempts;
    this.tenant = ref.tenant;
    this.progress = progress;
    this.#abort = abort;
    this.#log = log;
    Object.defineProperty(this, 'signal', AttemptContext.#signal);
    Object.defineProperty(this, 'logger', AttemptContext.#logger);
  }
}
