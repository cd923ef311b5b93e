// Reads a lane stream entry back into a typed event. Never throws: an entry it does not know is
// `other` and one whose fields do not parse is `malformed`, so no entry can stop the exporter reading.
import { ERROR_CLASSES, type ErrorClass } from './errors';
import {
  LANE_EVENT,
  type AttemptEvent,
  type AttemptRetry,
  type CompletedAttemptRow,
  type CompletedAttemptsEvent,
  type DeadEvent,
  type FlushToken,
  type DecodedLaneEvent,
  type ReclaimedEvent,
  type RetryBudgetExhaustedEvent,
} from './lane-event-types';

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

const ERROR_CLASS_SET: ReadonlySet<string> = new Set(ERROR_CLASSES);

class Malformed extends Error {}

/**
 * An entry's flat fields, looked up in place: an entry has a dozen fields at most and the exporter
 * decodes thousands a second, so a scan beats building a Map for each. As with a Map built from
 * them, the last of repeated fields wins.
 */
class EntryFields {
  constructor(private readonly fields: readonly string[]) {}

  get(key: string): string | undefined {
    const { fields } = this;
    for (let i = fields.length - (fields.length % 2) - 2; i >= 0; i -= 2) if (fields[i] === key) return fields[i + 1];
    return undefined;
  }

  has(key: string): boolean {
    return this.get(key) !== undefined;
  }
}

function str(map: EntryFields, key: string): string {
  const value = map.get(key);
  if (value === undefined || value === '') throw new Malformed(`missing ${key}`);
  return value;
}

function nonNegative(map: EntryFields, key: string): number {
  const value = Number(str(map, key));
  if (!Number.isFinite(value) || value < 0) throw new Malformed(`${key} is not a non-negative number`);
  return value;
}

/**
 * A run or wait time. One measured across a backward step of the worker's wall clock (workers
 * before bullpen timed attempts on the monotonic clock) is negative: the attempt still happened,
 * so it is read as 0 and counted in `negative`, not refused with its entry.
 */
function duration(value: unknown, negative: { count: number }): number | undefined {
  if (typeof value !== 'number' || !Number.isFinite(value)) return undefined;
  if (value >= 0) return value;
  negative.count += 1;
  return 0;
}

function durationField(map: EntryFields, key: string, negative: { count: number }): number {
  const value = duration(Number(str(map, key)), negative);
  if (value === undefined) throw new Malformed(`${key} is not a number`);
  return value;
}

/** An optional count: absent (older writers) is undefined, present must parse. */
function optionalCount(map: EntryFields, key: string): number | undefined {
  return map.has(key) ? nonNegative(map, key) : undefined;
}

/** Copies the optional fields that are present, so decoded events carry no undefined keys. */
function withOptional<T extends object>(ev: T, fields: Record<string, unknown>): T {
  for (const [key, value] of Object.entries(fields)) if (value !== undefined && value !== '') Object.assign(ev, { [key]: value });
  return ev;
}

function subjectOf(map: EntryFields): Record<string, unknown> {
  return { tenant: map.get('tenant'), attempt: optionalCount(map, 'attempt'), worker: map.get('worker') };
}

function errorClassOf(map: EntryFields): ErrorClass {
  const value = map.get('errorClass');
  return value !== undefined && ERROR_CLASS_SET.has(value) ? (value as ErrorClass) : 'unknown';
}

function decodeKnown(name: string, map: EntryFields): DecodedLaneEvent {
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
      const negative = { count: 0 };
      const ev: AttemptEvent = {
        event: LANE_EVENT.attempt,
        jobId: str(map, 'jobId'),
        name: map.get('name') ?? '',
        tenant: map.get('tenant') ?? '',
        attempt: nonNegative(map, 'attempt'),
        outcome,
        willRetry,
        runMs: durationField(map, 'runMs', negative),
        waitMs: durationField(map, 'waitMs', negative),
        worker: map.get('worker') ?? '',
      };
      if (negative.count > 0) ev.negativeDurations = negative.count;
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
    case LANE_EVENT.completedAttempts: {
      const { attempts, malformedRows, negativeDurations } = decodeCompletedAttempts(str(map, 'attempts'));
      const ev: CompletedAttemptsEvent = { event: LANE_EVENT.completedAttempts, worker: map.get('worker') ?? '', attempts };
      if (malformedRows > 0) ev.malformedRows = malformedRows;
      if (negativeDurations > 0) ev.negativeDurations = negativeDurations;
      const flush = map.get('flush');
      if (flush !== undefined) ev.flush = decodeFlushToken(flush);
      return ev;
    }
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

function decodeFlushToken(text: string): FlushToken {
  const at = text.lastIndexOf(':');
  const seq = Number(text.slice(at + 1));
  if (at <= 0 || !Number.isSafeInteger(seq) || seq < 0) throw new Malformed('flush is not <writer>:<seq>');
  return { writer: text.slice(0, at), seq };
}

/**
 * The rows of a bp:completed_attempts entry. An entry holds up to a flush's worth of attempts (200),
 * so one row that does not parse is left out and counted, not the whole entry with it.
 */
function decodeCompletedAttempts(text: string): { attempts: CompletedAttemptRow[]; malformedRows: number; negativeDurations: number } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Malformed('attempts is not JSON');
  }
  if (!Array.isArray(parsed)) throw new Malformed('attempts is not an array');
  const attempts: CompletedAttemptRow[] = [];
  const negative = { count: 0 };
  let malformedRows = 0;
  for (const row of parsed as unknown[]) {
    const decoded = Array.isArray(row) ? decodeCompletedAttemptRow(row, negative) : undefined;
    if (decoded) attempts.push(decoded);
    else malformedRows += 1;
  }
  return { attempts, malformedRows, negativeDurations: negative.count };
}

/** One row [jobId, name, tenant, attempt, runMs, waitMs]; undefined when it does not parse. */
function decodeCompletedAttemptRow(row: readonly unknown[], negative: { count: number }): CompletedAttemptRow | undefined {
  if (row.length < 6) return undefined;
  const [jobId, name, tenant, attempt] = row;
  if (typeof jobId !== 'string' || jobId === '') return undefined;
  if (typeof attempt !== 'number' || !Number.isFinite(attempt) || attempt < 0) return undefined;
  // Both times are checked before either negative one is counted: a row left out counts nothing else.
  if (duration(row[4], { count: 0 }) === undefined || duration(row[5], { count: 0 }) === undefined) return undefined;
  return {
    jobId,
    name: typeof name === 'string' ? name : '',
    tenant: typeof tenant === 'string' ? tenant : '',
    attempt,
    runMs: duration(row[4], negative) as number,
    waitMs: duration(row[5], negative) as number,
  };
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
  const map = new EntryFields(fields);
  const name = map.get('event');
  if (name === undefined) return { event: 'malformed', name: '', problem: 'no event field' };
  try {
    return decodeKnown(name, map);
  } catch (err) {
    if (err instanceof Malformed) return { event: 'malformed', name, problem: err.message };
    throw err;
  }
}

const DECODED_NAME_SET: ReadonlySet<string> = new Set(DECODED_EVENT_NAMES);
const EVENT_FIELD = Buffer.from('event');
const JOB_ID_FIELD = Buffer.from('jobId');
const COMPLETED = Buffer.from('completed');

/** Byte-wise equality, in JS: for the few bytes of a field name it is cheaper than a call into C++. */
function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
  return true;
}

/** The value of the last `key` field, as EntryFields.get finds it. */
function lastValue(fields: readonly Buffer[], key: Uint8Array): Buffer | undefined {
  for (let i = fields.length - (fields.length % 2) - 2; i >= 0; i -= 2) if (sameBytes(fields[i] as Buffer, key)) return fields[i + 1];
  return undefined;
}

/**
 * decodeLaneEvent for an entry read as Buffers (XREAD through ioredis's `xreadBuffer`), with the same
 * result for the same bytes. Most entries of a busy lane are BullMQ's `active` and `completed`,
 * which need their name and at most the job id: those are decoded without making a string of
 * every field (ioredis reads each field as a Buffer, then copies it into a string). Counting a
 * drained lane, that took the exporter from 2.64–2.84 to 2.44–2.54 µs of CPU an entry. Every other
 * entry is turned into strings and decoded as usual.
 */
export function decodeLaneEventBuffers(fields: readonly Buffer[]): DecodedLaneEvent {
  const name = lastValue(fields, EVENT_FIELD);
  if (name === undefined) return { event: 'malformed', name: '', problem: 'no event field' };
  if (sameBytes(name, COMPLETED)) {
    const jobId = lastValue(fields, JOB_ID_FIELD);
    if (jobId !== undefined && jobId.length > 0) return { event: 'completed', jobId: jobId.toString() };
  } else {
    const text = name.toString();
    if (!DECODED_NAME_SET.has(text)) return { event: 'other', name: text };
  }
  return decodeLaneEvent(fields.map((field) => field.toString()));
}
