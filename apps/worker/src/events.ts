// The worker's lifecycle events: what the metrics and tracing layers consume. One payload object
// per event, named `domain:verb`.
import type { ErrorClass } from '@bullpen/core';

/** Identifies one attempt of one job. */
export interface AttemptRef {
  lane: string;
  jobId: string;
  jobName: string;
  /** undefined for jobs added by plain BullMQ clients. */
  tenant: string | undefined;
  /** 1-based number of the attempt. */
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

export interface WorkerEventMap {
  /** A job was leased by this worker (it became active here); the handler has not started yet. */
  'job:started': AttemptRef & {
    /** Epoch ms at which the job was created. */
    enqueuedAt: number;
    /** Epoch ms of the lease. */
    startedAt: number;
  };
  /** The attempt succeeded and BullMQ recorded the job as completed. */
  'job:completed': AttemptRef & AttemptTimings;
  /** An attempt failed and BullMQ recorded it (as a retry or as the job's failure). */
  'job:failed': AttemptRef &
    AttemptTimings & {
      errorClass: ErrorClass;
      message: string;
      retryable: boolean;
      willRetry: boolean;
      /** Delay before the next attempt; null when none follows. */
      delayMs: number | null;
    };
  /** A failed attempt will be followed by another after delayMs. */
  'job:retrying': AttemptRef & { errorClass: ErrorClass; delayMs: number; nextAttempt: number };
  /** The job ended without success and stays in the lane's failed set (the dead letters). */
  'job:dead': AttemptRef & { errorClass: ErrorClass; reason: string; attemptsMade: number };
  /** BullMQ's stalled checker in this process found a job whose lock expired and moved it back to wait. */
  'job:stalled': { lane: string; jobId: string; workerId: string };
  /** The attempt's timeout passed: its signal has been aborted. */
  'handler:timeout-warning': AttemptRef & { timeoutMs: number; elapsedMs: number };
  /** The handler ignored its aborted signal and was abandoned; its slot is free again. */
  'handler:timeout-escalated': AttemptRef & {
    timeoutMs: number;
    elapsedMs: number;
    /** Why the signal was aborted in the first place. */
    cause: 'timeout' | 'cancelled';
    /** Handlers abandoned by this process so far. */
    ignoredSignalTotal: number;
  };
}

export type WorkerEventName = keyof WorkerEventMap;
