// The lane event contract. Every lane's BullMQ event stream (`<prefix>:<lane>:events`) carries
// BullMQ's native events; bullpen's processes add their own entries to the same stream with
// `bp:`-prefixed names, encoded as flat string pairs. The exporter decodes both kinds from here,
// tolerating entries it does not know and entries that are malformed. Pure: the writes are in
// publish-lane-event.ts and record-attempt.ts.
import { ERROR_CLASSES, type ErrorClass } from './errors';

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

/** Event names with a decoder: the bounded values of the exporter's `event` label besides other/malformed. */
export const DECODED_EVENT_NAMES = [
  'added',
  'completed',
  'failed',
  'stalled',
  LANE_EVENT.attempt,
  LANE_EVENT.completedAttempts,
  LANE_EVENT.retryBudgetExhausted,
  LANE_EVENT.dead,
  LANE_EVENT.rejected,
  LANE_EVENT.reclaimed,
] as const;

const num = (n: number): string => String(n);

function optional(fields: string[], key: string, value: string | number | undefined): void {
  if (value !== undefined) fields.push(key, String(value));
}

function subjectFields(fields: string[], ev: LaneEventSubject): string[] {
  optional(fields, 'tenant', ev.tenant);
  optional(fields, 'attempt', ev.attempt);
  optional(fields, 'worker', ev.worker);
  return fields;
}

/** Flat field/value pairs for XADD. */
export function encodeLaneEvent(ev: BullpenLaneEvent): string[] {
  switch (ev.event) {
    case LANE_EVENT.attempt: {
      const fields = ['event', ev.event, 'jobId', ev.jobId, 'name', ev.name, 'tenant', ev.tenant];
      fields.push('attempt', num(ev.attempt), 'outcome', ev.outcome);
      if (ev.outcome === 'failed') fields.push('errorClass', ev.errorClass ?? 'unknown');
      fields.push('willRetry', ev.willRetry ? '1' : '0', 'runMs', num(ev.runMs), 'waitMs', num(ev.waitMs));
      if (ev.willRetry && ev.delayMs !== undefined) fields.push('delayMs', num(ev.delayMs));
      fields.push('worker', ev.worker);
      if (ev.outcome === 'failed' && ev.retryable !== undefined) fields.push('retryable', ev.retryable ? '1' : '0');
      if (ev.willRetry && ev.retry) {
        const { reason, strategy, source, retryAfterMs, nextAttempt } = ev.retry;
        fields.push('retryReason', reason, 'strategy', strategy, 'delaySource', source, 'nextAttempt', num(nextAttempt));
        optional(fields, 'retryAfterMs', retryAfterMs);
      }
      return fields;
    }
    case LANE_EVENT.completedAttempts:
      return ['event', ev.event, 'worker', ev.worker, 'attempts', encodeCompletedAttempts(ev.attempts)];
    case LANE_EVENT.retryBudgetExhausted: {
      const fields = ['event', ev.event, 'jobId', ev.jobId, 'action', ev.action];
      optional(fields, 'name', ev.name);
      optional(fields, 'errorClass', ev.errorClass);
      optional(fields, 'retriesInWindow', ev.retriesInWindow);
      optional(fields, 'allowedInWindow', ev.allowedInWindow);
      return subjectFields(fields, ev);
    }
    case LANE_EVENT.dead: {
      const fields = ['event', ev.event, 'jobId', ev.jobId, 'name', ev.name, 'errorClass', ev.errorClass, 'reason', ev.reason];
      optional(fields, 'attemptsMade', ev.attemptsMade);
      if (ev.withoutAttempt) fields.push('withoutAttempt', '1');
      return subjectFields(fields, ev);
    }
    case LANE_EVENT.rejected:
      return ['event', ev.event, 'count', num(ev.count), 'reason', ev.reason];
    case LANE_EVENT.reclaimed: {
      const fields = ['event', ev.event, 'jobId', ev.jobId, 'name', ev.name, 'lostStarts', num(ev.lostStarts)];
      optional(fields, 'previousWorker', ev.previousWorker);
      return subjectFields(fields, ev);
    }
  }
}

/** A completed attempt as it is stored in a bp:completed_attempts entry. */
export type CompletedAttemptTuple = [jobId: string, name: string, tenant: string, attempt: number, runMs: number, waitMs: number];

/** The `attempts` field of a bp:completed_attempts entry. */
export function encodeCompletedAttempts(rows: readonly CompletedAttemptRow[]): string {
  return JSON.stringify(rows.map((r): CompletedAttemptTuple => [r.jobId, r.name, r.tenant, r.attempt, r.runMs, r.waitMs]));
}

const ERROR_CLASS_SET: ReadonlySet<string> = new Set(ERROR_CLASSES);

class Malformed extends Error {}

function fieldMap(fields: readonly string[]): Map<string, string> {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) map.set(fields[i] as string, fields[i + 1] as string);
  return map;
}

function str(map: Map<string, string>, key: string): string {
  const value = map.get(key);
  if (value === undefined || value === '') throw new Malformed(`missing ${key}`);
  return value;
}

function nonNegative(map: Map<string, string>, key: string): number {
  const value = Number(str(map, key));
  if (!Number.isFinite(value) || value < 0) throw new Malformed(`${key} is not a non-negative number`);
  return value;
}

/** An optional count: absent (older writers) is undefined, present must parse. */
function optionalCount(map: Map<string, string>, key: string): number | undefined {
  return map.has(key) ? nonNegative(map, key) : undefined;
}

/** Copies the optional fields that are present, so decoded events carry no undefined keys. */
function withOptional<T extends object>(ev: T, fields: Record<string, unknown>): T {
  for (const [key, value] of Object.entries(fields)) if (value !== undefined && value !== '') Object.assign(ev, { [key]: value });
  return ev;
}

function subjectOf(map: Map<string, string>): Record<string, unknown> {
  return { tenant: map.get('tenant'), attempt: optionalCount(map, 'attempt'), worker: map.get('worker') };
}

function errorClassOf(map: Map<string, string>): ErrorClass {
  const value = map.get('errorClass');
  return value !== undefined && ERROR_CLASS_SET.has(value) ? (value as ErrorClass) : 'unknown';
}

function decodeKnown(name: string, map: Map<string, string>): DecodedLaneEvent {
  switch (name) {
    case 'added':
      return { event: 'added', jobId: str(map, 'jobId'), name: map.get('name') ?? '' };
    case 'completed':
      return { event: 'completed', jobId: str(map, 'jobId') };
    case 'failed':
      return { event: 'failed', jobId: str(map, 'jobId'), failedReason: map.get('failedReason') ?? '' };
    case 'stalled':
      return { event: 'stalled', jobId: str(map, 'jobId') };
    case LANE_EVENT.attempt: {
      const outcome = str(map, 'outcome');
      if (outcome !== 'completed' && outcome !== 'failed') throw new Malformed('outcome is not completed|failed');
      const willRetry = map.get('willRetry') === '1';
      const ev: AttemptEvent = {
        event: LANE_EVENT.attempt,
        jobId: str(map, 'jobId'),
        name: map.get('name') ?? '',
        tenant: map.get('tenant') ?? '',
        attempt: nonNegative(map, 'attempt'),
        outcome,
        willRetry,
        runMs: nonNegative(map, 'runMs'),
        waitMs: nonNegative(map, 'waitMs'),
        worker: map.get('worker') ?? '',
      };
      if (outcome === 'failed') ev.errorClass = errorClassOf(map);
      if (willRetry && map.has('delayMs')) ev.delayMs = nonNegative(map, 'delayMs');
      if (outcome === 'failed' && map.has('retryable')) ev.retryable = map.get('retryable') === '1';
      if (willRetry && map.has('retryReason')) {
        ev.retry = withOptional<AttemptRetry>(
          { reason: str(map, 'retryReason'), strategy: str(map, 'strategy'), source: str(map, 'delaySource'), nextAttempt: nonNegative(map, 'nextAttempt') },
          { retryAfterMs: optionalCount(map, 'retryAfterMs') },
        );
      }
      return ev;
    }
    case LANE_EVENT.completedAttempts:
      return { event: LANE_EVENT.completedAttempts, worker: map.get('worker') ?? '', attempts: decodeCompletedAttempts(str(map, 'attempts')) };
    case LANE_EVENT.retryBudgetExhausted: {
      const action = str(map, 'action');
      if (action !== 'defer' && action !== 'fail') throw new Malformed('action is not defer|fail');
      return withOptional<RetryBudgetExhaustedEvent>(
        { event: LANE_EVENT.retryBudgetExhausted, jobId: str(map, 'jobId'), action },
        {
          name: map.get('name'),
          errorClass: map.has('errorClass') ? errorClassOf(map) : undefined,
          retriesInWindow: optionalCount(map, 'retriesInWindow'),
          allowedInWindow: optionalCount(map, 'allowedInWindow'),
          ...subjectOf(map),
        },
      );
    }
    case LANE_EVENT.dead:
      return withOptional<DeadEvent>(
        {
          event: LANE_EVENT.dead,
          jobId: str(map, 'jobId'),
          name: map.get('name') ?? '',
          errorClass: errorClassOf(map),
          reason: map.get('reason') ?? '',
        },
        { attemptsMade: optionalCount(map, 'attemptsMade'), withoutAttempt: map.get('withoutAttempt') === '1' ? true : undefined, ...subjectOf(map) },
      );
    case LANE_EVENT.rejected: {
      const count = nonNegative(map, 'count');
      if (!Number.isInteger(count)) throw new Malformed('count is not an integer');
      const reason = str(map, 'reason');
      if (reason !== 'queue_full') throw new Malformed('reason is not queue_full');
      return { event: LANE_EVENT.rejected, count, reason };
    }
    case LANE_EVENT.reclaimed:
      return withOptional<ReclaimedEvent>(
        { event: LANE_EVENT.reclaimed, jobId: str(map, 'jobId'), name: map.get('name') ?? '', lostStarts: nonNegative(map, 'lostStarts') },
        { previousWorker: map.get('previousWorker'), ...subjectOf(map) },
      );
    default:
      return { event: 'other', name };
  }
}

function decodeCompletedAttempts(text: string): CompletedAttemptRow[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Malformed('attempts is not JSON');
  }
  if (!Array.isArray(parsed)) throw new Malformed('attempts is not an array');
  return parsed.map((row: unknown, i) => {
    if (!Array.isArray(row) || row.length < 6) throw new Malformed(`attempts[${i}] is not a row of 6`);
    const [jobId, name, tenant, attempt, runMs, waitMs] = row as unknown[];
    if (typeof jobId !== 'string' || jobId === '') throw new Malformed(`attempts[${i}] has no jobId`);
    for (const [key, value] of [['attempt', attempt], ['runMs', runMs], ['waitMs', waitMs]] as const) {
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new Malformed(`attempts[${i}].${key} is not a non-negative number`);
    }
    return {
      jobId,
      name: typeof name === 'string' ? name : '',
      tenant: typeof tenant === 'string' ? tenant : '',
      attempt: attempt as number,
      runMs: runMs as number,
      waitMs: waitMs as number,
    };
  });
}

/**
 * The attempts an event reports, one AttemptEvent each: a bp:attempt as it is, and every row of a
 * bp:completed_attempts entry. Anything else reports none.
 */
export function attemptsOf(ev: DecodedLaneEvent): AttemptEvent[] {
  if (ev.event === LANE_EVENT.attempt) return [ev];
  if (ev.event !== LANE_EVENT.completedAttempts) return [];
  return ev.attempts.map((row) => ({ event: LANE_EVENT.attempt, ...row, outcome: 'completed', willRetry: false, worker: ev.worker }));
}

/** Decodes one stream entry's flat fields. Never throws. */
export function decodeLaneEvent(fields: readonly string[]): DecodedLaneEvent {
  const map = fieldMap(fields);
  const name = map.get('event');
  if (name === undefined) return { event: 'malformed', name: '', problem: 'no event field' };
  try {
    return decodeKnown(name, map);
  } catch (err) {
    if (err instanceof Malformed) return { event: 'malformed', name, problem: err.message };
    throw err;
  }
}
