// What a lane stream entry can be: bullpen's own `bp:` events as their writers publish them, the
// native BullMQ events the exporter counts, and what decoding any entry yields.
import type { ErrorClass } from './errors';

export const LANE_EVENT = {
  attempt: 'bp:attempt',
  completedAttempts: 'bp:completed_attempts',
  retryBudgetExhausted: 'bp:retry_budget_exhausted',
  dead: 'bp:dead',
  rejected: 'bp:rejected',
  reclaimed: 'bp:reclaimed',
} as const;

/** One finished attempt, published by the worker before BullMQ records the job's outcome. */
export interface AttemptEvent {
  event: typeof LANE_EVENT.attempt;
  jobId: string;
  name: string;
  tenant: string;
  /** 1-based number of this attempt. */
  attempt: number;
  outcome: 'completed' | 'failed';
  /** Failed attempts only. */
  errorClass?: ErrorClass;
  /** Whether a retry was scheduled after this (failed) attempt. */
  willRetry: boolean;
  runMs: number;
  /** From eligible to run (enqueue, or the end of its delay/backoff) to start. */
  waitMs: number;
  /** The backoff chosen before the retry; only when willRetry. */
  delayMs?: number;
  /** WORKER_ID of the worker that ran the attempt. */
  worker: string;
  /** Failed attempts only, for the exporter's lifecycle log: whether the error class allows a
   * retry at all. Absent in entries of older workers. */
  retryable?: boolean;
  /** How the retry was decided, when willRetry (absent in entries of older workers). */
  retry?: AttemptRetry;
  /** Set by the decoder: how many of runMs and waitMs were negative on the stream and read as 0. */
  negativeDurations?: number;
}

/** How a failed attempt's retry was decided: what the worker logs as backoff_applied and
 * retry_scheduled. */
export interface AttemptRetry {
  /** backoff, rate_limited or budget_deferred. */
  reason: string;
  /** The lane's backoff strategy, or bullmq for a job with one of BullMQ's own backoffs. */
  strategy: string;
  /** Where the delay came from: strategy, retry_after, budget_cap or bullmq. */
  source: string;
  /** The dependency's Retry-After, when it gave one. */
  retryAfterMs?: number;
  /** The number the next attempt runs under (the same one when this retry used no attempt). */
  nextAttempt: number;
}

/**
 * Who and which attempt an event is about, for the exporter's lifecycle log. Optional: entries
 * written by older workers lack them (the log then has null there).
 */
export interface LaneEventSubject {
  tenant?: string;
  attempt?: number;
  /** WORKER_ID of the worker that ran the attempt. */
  worker?: string;
}

/** One completed attempt in a bp:completed_attempts entry. */
export interface CompletedAttemptRow {
  jobId: string;
  name: string;
  tenant: string;
  /** 1-based number of this attempt. */
  attempt: number;
  runMs: number;
  /** From eligible to run (enqueue, or the end of its delay/backoff) to start. */
  waitMs: number;
}

/**
 * Completed attempts of one worker, many to an entry: the success path writes one stream entry per
 * batch rather than one per job. Each row means what a completed bp:attempt would (outcome
 * completed, no retry). On the stream the rows are one JSON field, each row an array
 * [jobId, name, tenant, attempt, runMs, waitMs].
 */
export interface CompletedAttemptsEvent {
  event: typeof LANE_EVENT.completedAttempts;
  /** WORKER_ID of the worker that ran the attempts. */
  worker: string;
  attempts: CompletedAttemptRow[];
  /** Set by the decoder: rows that did not parse, left out of `attempts` (the others are kept). */
  malformedRows?: number;
  /** Set by the decoder: run and wait times of the rows that were negative on the stream and read as 0. */
  negativeDurations?: number;
  /** Which write of which writer this entry is (absent from older workers): see FlushToken. */
  flush?: FlushToken;
}

/**
 * Names one bp:completed_attempts write. A worker's connection sends again the commands whose
 * replies a dropped connection lost, and an XADD that Redis had applied is then added twice: the
 * copy carries the same token, so a reader counts it once. `writer` is new with each worker's
 * buffer, and its `seq` grows with each write, in the order the writes reach a lane's stream.
 */
export interface FlushToken {
  writer: string;
  seq: number;
}

/** The lane retry budget refused a retry; the worker deferred it or failed the job instead. */
export interface RetryBudgetExhaustedEvent extends LaneEventSubject {
  event: typeof LANE_EVENT.retryBudgetExhausted;
  jobId: string;
  action: 'defer' | 'fail';
  name?: string;
  /** Class of the failure whose retry was refused. */
  errorClass?: ErrorClass;
  retriesInWindow?: number;
  allowedInWindow?: number;
}

/** A job ended without success and stays in the dead letters. */
export interface DeadEvent extends LaneEventSubject {
  event: typeof LANE_EVENT.dead;
  jobId: string;
  name: string;
  errorClass: ErrorClass;
  reason: string;
  attemptsMade?: number;
  /** BullMQ failed the job without running an attempt here (it stalled too often): no
   * bp:attempt precedes this entry. */
  withoutAttempt?: boolean;
}

/** A worker took over a job whose earlier start never finished (its worker died or lost the lock). */
export interface ReclaimedEvent extends LaneEventSubject {
  event: typeof LANE_EVENT.reclaimed;
  jobId: string;
  name: string;
  /** WORKER_ID of the worker whose start never finished, when its lease was recorded. */
  previousWorker?: string;
  /** Starts that never finished. */
  lostStarts: number;
}

/** The API refused `count` submissions to the lane at admission. */
export interface RejectedEvent {
  event: typeof LANE_EVENT.rejected;
  count: number;
  reason: 'queue_full';
}

export type BullpenLaneEvent =
  | AttemptEvent
  | CompletedAttemptsEvent
  | RetryBudgetExhaustedEvent
  | DeadEvent
  | RejectedEvent
  | ReclaimedEvent;

/** The native BullMQ events the exporter counts (fields as BullMQ's scripts write them). */
export type NativeLaneEvent =
  | { event: 'added'; jobId: string; name: string }
  | { event: 'completed'; jobId: string }
  /** Terminal failures only: a retried attempt produces `delayed` or `waiting` instead. */
  | { event: 'failed'; jobId: string; failedReason: string }
  | { event: 'stalled'; jobId: string };

/** Any other entry: BullMQ events not counted (waiting, active, ...) or `bp:` events of a newer version. */
export interface UnhandledLaneEvent {
  event: 'other';
  name: string;
}

/** An entry with a known name whose fields do not parse. */
export interface MalformedLaneEvent {
  event: 'malformed';
  name: string;
  problem: string;
}

export type DecodedLaneEvent = BullpenLaneEvent | NativeLaneEvent | UnhandledLaneEvent | MalformedLaneEvent;
