// A failed or finished attempt recorded in one atomic step (lua/record-attempt.lua): its row in the
// job's attempt history and its bp:attempt entry in the lane stream (lane-events.ts); and the row of
// an attempt lost to a stall, which no worker ran to its end (lua/append-attempt-row.lua).
import type { RedisClient } from './redis';
import { formatAttemptLogRow, type AttemptLogRow } from './attempt-log';
import { jobKeys, laneEventsKey } from './keys';
import { encodeLaneEvent, LANE_EVENT, type AttemptEvent } from './lane-events';
import { scriptCommand } from './lua';

const RECORD_ATTEMPT = 'bullpenRecordAttempt';
interface RecordAttemptClient {
  [RECORD_ATTEMPT](...args: (string | number)[]): Promise<string | null>;
}

function recordAttemptClient(redis: RedisClient): RecordAttemptClient {
  return scriptCommand<RecordAttemptClient>(redis, RECORD_ATTEMPT, 'record-attempt', 4);
}

export interface RecordAttemptOptions {
  prefix: string;
  lane: string;
  /** The lane stream's approximate maximum length (config.eventsMaxLen). */
  maxLen: number;
  attempt: Omit<AttemptEvent, 'event'>;
  /** Failed attempts: the error message kept in the attempt history. */
  message?: string;
  /** A rate-limited failure retried without using an attempt: which free retry it is, from 1. */
  rateLimitedRetry?: number;
  /** Keep at most this many log rows per job (BullMQ keepLogs); default all. */
  keepLogs?: number;
  /** When the attempt ended; default now. */
  ts?: number;
  /** The job's lock token the attempt ran under: nothing is recorded once another holds the lock. */
  lockToken?: string;
  /** Job hash fields (JOB_FIELD) counted up by one with the row, only while the job exists and
   * its lock is not another's. */
  counts?: readonly string[];
}

/**
 * Records one finished attempt in one atomic step: for a failed attempt its row in the job's
 * attempt history (the BullMQ log, read by the API and by the exporter for terminal failures),
 * and a `bp:attempt` entry in the lane stream. Call it before the job's outcome is recorded in
 * BullMQ (before returning or throwing from the processor), so that the row exists when the
 * native `failed` event is read. Resolves to the stream entry id, or null when `lockToken` is no
 * longer the job's lock (another worker has the job: nothing was recorded).
 */
export async function recordAttempt(redis: RedisClient, options: RecordAttemptOptions): Promise<string | null> {
  const { prefix, lane, maxLen, attempt, keepLogs = 0 } = options;
  const ev: AttemptEvent = { event: LANE_EVENT.attempt, ...attempt };
  const row =
    attempt.outcome === 'failed'
      ? formatAttemptLogRow({
          attempt: attempt.attempt,
          errorClass: attempt.errorClass ?? 'unknown',
          message: options.message ?? '',
          delayMs: attempt.willRetry ? (attempt.delayMs ?? null) : null,
          worker: attempt.worker,
          ts: options.ts ?? Date.now(),
          ...(options.rateLimitedRetry !== undefined ? { rateLimitedRetry: options.rateLimitedRetry } : {}),
        })
      : '';
  const keys = jobKeys(prefix, lane, attempt.jobId);
  return recordAttemptClient(redis)[RECORD_ATTEMPT](
    keys.job,
    keys.logs,
    laneEventsKey(prefix, lane),
    keys.lock,
    maxLen,
    row,
    keepLogs,
    options.lockToken ?? '',
    options.counts?.length ?? 0,
    ...(options.counts ?? []),
    ...encodeLaneEvent(ev),
  );
}

const APPEND_ATTEMPT_ROW = 'bullpenAppendAttemptRow';
interface AppendAttemptRowClient {
  [APPEND_ATTEMPT_ROW](...args: (string | number)[]): Promise<number>;
}

export interface AppendAttemptRowOptions {
  prefix: string;
  lane: string;
  jobId: string;
  row: Omit<AttemptLogRow, 'type'>;
  /** Keep at most this many log rows per job (BullMQ keepLogs); default all. */
  keepLogs?: number;
  /**
   * For a retry-budget deferral row: replace the last row instead of appending when it is a
   * deferral row of the same attempt (one row per deferred retry, counting its deferrals).
   */
  replaceDeferralRow?: boolean;
}

/**
 * Appends a row for an attempt no worker recorded (one lost to a stall: its worker died or stopped
 * renewing its lock) to the job's attempt history, without a lane event. Resolves to false when
 * the job no longer exists (nothing written).
 */
export async function appendAttemptRow(redis: RedisClient, options: AppendAttemptRowOptions): Promise<boolean> {
  const keys = jobKeys(options.prefix, options.lane, options.jobId);
  const client = scriptCommand<AppendAttemptRowClient>(redis, APPEND_ATTEMPT_ROW, 'append-attempt-row', 2);
  const replaceOf = options.replaceDeferralRow ? String(options.row.attempt) : '';
  return (await client[APPEND_ATTEMPT_ROW](keys.job, keys.logs, formatAttemptLogRow(options.row), options.keepLogs ?? 0, replaceOf)) === 1;
}
