// The worker's lifecycle events: what the metrics and tracing layers consume. One payload object
// per event, named `domain:verb`.
import type { BackoffStrategyName, ErrorClass, RedisDataLoss } from '@bullpen/core';

/** Identifies one attempt of one job. */
export interface AttemptRef {
  lane: string;
  jobId: string;
  jobName: string;
  /** undefined for jobs added by plain BullMQ clients. */
  tenant: string | undefined;
  /** 1-based number of the attempt, counted against the job's attempts (a rate-limited retry that
   * does not use an attempt runs under the same number again). */
  attempt: number;
  /** The job's attempts, including the first. */
  maxAttempts: number;
  /** WORKER_ID of this process. */
  workerId: string;
}

/** Where the time of an attempt went. Null for a stage the attempt never reached. */
export interface AttemptTimings {
  /** From the lease (job became active here) to the attempt's end. */
  durationMs: number;
  /** Waiting for a slot under the process-wide handler cap. */
  slotWaitMs: number | null;
  /** Running the handler. */
  handlerMs: number | null;
}

/** Why a job ended without success. */
export type DeadReason =
  | 'permanent_error'
  | 'attempts_exhausted'
  | 'deadline_exceeded'
  | 'retry_budget_exhausted'
  /** Rate limited once more after the lane's maxRateLimitedRetries retries that used no attempt. */
  | 'rate_limited_retries_exhausted'
  | 'cancelled'
  | 'stalled';

/** Why a retry was scheduled with its delay. */
export type RetryReason =
  /** The lane's backoff strategy (or a Retry-After floor on it). */
  | 'backoff'
  /** A rate-limited failure (429, Retry-After). */
  | 'rate_limited'
  /** The retry budget was exhausted and the lane defers retries to its backoff cap. */
  | 'budget_deferred';

/** Where a retry's delay came from. */
export type DelaySource = 'strategy' | 'retry_after' | 'budget_cap' | 'bullmq';

/** The process's memory as the memory guard last sampled it. */
export interface MemoryState {
  /** Whether intake is stopped on all lanes because RSS passed the limit. */
  paused: boolean;
  rssBytes: number;
  heapUsedBytes: number;
  /** WORKER_MAX_RSS_MB in bytes. */
  maxRssBytes: number;
  /** Intake resumes below this (90% of the limit). */
  resumeBelowBytes: number;
  /** WORKER_HEAP_WARN_MB in bytes. */
  heapWarnBytes: number;
  /** Whether heap used is above heapWarnBytes. */
  heapWarning: boolean;
}

export interface WorkerEventMap {
  /** A job was leased by this worker (it became active here); the handler has not started yet. */
  'job:started': AttemptRef & {
    /** Epoch ms at which the job was created. */
    enqueuedAt: number;
    /** Epoch ms of the lease. */
    startedAt: number;
    /** BullMQ's count of starts of this job, this one included. */
    attemptsStarted: number;
  };
  /** The job was started before and that start never finished (its worker died or lost the lock):
   * this worker took it over. Emitted shortly after job:started, once the job's history is read. */
  'job:reclaimed': AttemptRef & {
    /** WORKER_ID of the worker whose start never finished; undefined when unknown (it crashed
     * before its lease was recorded). */
    previousWorker: string | undefined;
    /** Starts that never finished. */
    lostStarts: number;
  };
  /** The attempt succeeded and BullMQ recorded the job as completed. */
  'job:completed': AttemptRef &
    AttemptTimings & {
      /** From when the job could run (enqueue, or the end of its delay or backoff) to its lease. */
      waitMs: number;
    };
  /** An attempt failed and BullMQ recorded it (as a retry or as the job's failure). */
  'job:failed': AttemptRef &
    AttemptTimings & {
      errorClass: ErrorClass;
      message: string;
      retryable: boolean;
      willRetry: boolean;
      /** Delay before the next attempt; null when none follows. */
      delayMs: number | null;
      /** Whether this failure used one of the job's attempts. */
      consumesAttempt: boolean;
    };
  /** The delay before a retry was chosen and the job moved to the delayed set with it. */
  'job:backoff-applied': AttemptRef & {
    delayMs: number;
    /** The lane's strategy; 'bullmq' for jobs that carry one of BullMQ's own backoffs. */
    strategy: BackoffStrategyName | 'bullmq';
    source: DelaySource;
    /** The dependency's Retry-After, when it gave one. */
    retryAfterMs: number | undefined;
  };
  /** A failed attempt will be followed by another after delayMs. */
  'job:retrying': AttemptRef & {
    errorClass: ErrorClass;
    delayMs: number;
    /** The number the next attempt runs under (the same one when this retry used no attempt). */
    nextAttempt: number;
    reason: RetryReason;
    consumesAttempt: boolean;
  };
  /** The lane's retry budget refused a retry: it was deferred to the backoff cap, or the job failed. */
  'job:retry-budget-exhausted': AttemptRef & {
    action: 'defer' | 'fail';
    /** Class of the failure whose retry was refused. */
    errorClass: ErrorClass;
    retriesInWindow: number;
    allowedInWindow: number;
  };
  /** The job ended without success and stays in the lane's failed set (the dead letters). */
  'job:dead': AttemptRef & {
    errorClass: ErrorClass;
    reason: DeadReason;
    /** The job's failedReason. */
    message: string;
    attemptsMade: number;
  };
  /** BullMQ's stalled checker in this process found a job whose lock expired and moved it back to
   * wait: to run again, or, once it has stalled more often than the lane's maxStalls, to be failed
   * as stalled by the next worker that takes it. */
  'job:stalled': {
    lane: string;
    jobId: string;
    /** This process, which detected the stall. */
    workerId: string;
    /** The worker that held the job, when its lease was recorded. */
    previousWorker: string | undefined;
    /** The job stalled more often than maxStalls allows: it fails as stalled and will not run again. */
    failsAsStalled: boolean;
  };
  /** The attempt's handler ended (returned, threw, or was cut off by its timeout or a cancellation). */
  'handler:finished': {
    lane: string;
    /** How long the handler ran. */
    handlerMs: number;
    /** The attempt's timeout: the job's own timeoutMs, else the lane's (a deadline that cuts an
     * attempt shorter is not a timeout). */
    timeoutMs: number;
  };
  /** The attempt's timeout passed: its signal has been aborted. */
  'handler:timeout-warning': AttemptRef & { timeoutMs: number; elapsedMs: number; isolated: boolean };
  /** The handler ignored its aborted signal: its slot is free again. In-process it was abandoned
   * (it may still run); in an isolated lane its thread was terminated. */
  'handler:timeout-escalated': AttemptRef & {
    timeoutMs: number;
    elapsedMs: number;
    /** Why the signal was aborted in the first place. */
    cause: 'timeout' | 'cancelled';
    /** In-process handlers abandoned by this process so far. */
    ignoredSignalTotal: number;
    isolated: boolean;
    /** Whether the handler was really stopped (its thread terminated). */
    terminated: boolean;
  };
  /** RSS passed the limit: intake stopped on all lanes; active jobs continue. */
  'memory:paused': MemoryState;
  /** RSS fell below 90% of the limit: the memory guard lets intake resume (a lane another reason holds stays paused). */
  'memory:resumed': MemoryState;
  /** Heap used passed its warning threshold. */
  'memory:heap-warning': MemoryState;
  /** Redis refused a write of the lane because it is at `maxmemory` (an OOM reply): the lane's
   * intake pauses, for longer after each refusal in a row, until Redis accepts writes again. */
  'redis:oom-refused': { lane: string; error: string };
  /** Redis lost bullpen's data (its marker key gone or replaced, read at a reconnect or on the
   * REDIS_MARKER_CHECK_INTERVAL_MS): jobs acknowledged before may be gone. Logged at error when
   * emitted; once per loss. The runtime writes the lanes' caps and registry back. */
  'redis:data-lost': RedisDataLoss;
  /** Lifecycle event log lines could not be written (disk full, permission denied): they were
   * dropped. Jobs are not affected. Emitted after a write attempt that failed. */
  'event-log:write-failed': {
    /** File of the event log (EVENT_LOG_FILE). */
    file: string;
    /** Failed writes since the previous event. */
    errors: number;
    /** Failed writes so far. */
    errorsTotal: number;
    /** Lines dropped so far. */
    droppedLinesTotal: number;
  };
  /** Lifecycle event log lines were dropped: their write failed, or they found the write buffer
   * full (the disk is slow or stuck). Jobs are not affected. Emitted at most once per flush interval. */
  'event-log:lines-dropped': {
    /** File of the event log (EVENT_LOG_FILE). */
    file: string;
    /** Lines dropped since the previous event. */
    lines: number;
    /** Lines dropped so far. */
    droppedLinesTotal: number;
  };
}

export type WorkerEventName = keyof WorkerEventMap;
