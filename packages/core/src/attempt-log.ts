// The attempt history of a job: the worker appends one JSON row to the job's BullMQ log per failed
// attempt, and the API reads the rows back. Both sides use this module so the shape cannot drift.
import { ERROR_CLASSES, type ErrorClass } from './errors';

export interface AttemptLogRow {
  type: 'attempt';
  /** 1-based number of the attempt that failed. */
  attempt: number;
  errorClass: ErrorClass;
  message: string;
  /** Delay chosen before the next attempt; null when no retry follows. */
  delayMs: number | null;
  /** WORKER_ID of the worker that ran the attempt. */
  worker: string;
  /** Epoch ms at which the attempt failed. */
  ts: number;
  /** Set when the failure was rate limited and retried without using an attempt (a lane with
   * `rateLimitedConsumesAttempt: false`): which of the job's free retries that was, from 1. The
   * row's `attempt` stays the attempt that is retried, so consecutive free retries share it. */
  rateLimitedRetry?: number;
  /** Set on the row of a start that ran no handler: its retry had been deferred by the lane's
   * retry budget, which refused it again when it came due, so it was deferred once more without
   * using an attempt. Which deferral of that retry it was: the failed attempt's own deferral is the
   * first, so these rows count from 2. The row keeps the number and the error class of the
   * attempt whose retry is deferred. */
  budgetDeferral?: number;
}

/** Longest message kept in a row; longer messages are cut so one log row stays small. */
export const ATTEMPT_MESSAGE_MAX_CHARS = 2000;

export function formatAttemptLogRow(row: Omit<AttemptLogRow, 'type'>): string {
  const message =
    row.message.length > ATTEMPT_MESSAGE_MAX_CHARS ? `${row.message.slice(0, ATTEMPT_MESSAGE_MAX_CHARS)}…` : row.message;
  const full: AttemptLogRow = {
    type: 'attempt',
    attempt: row.attempt,
    errorClass: row.errorClass,
    message,
    delayMs: row.delayMs,
    worker: row.worker,
    ts: row.ts,
    ...(row.rateLimitedRetry !== undefined ? { rateLimitedRetry: row.rateLimitedRetry } : {}),
    ...(row.budgetDeferral !== undefined ? { budgetDeferral: row.budgetDeferral } : {}),
  };
  return JSON.stringify(full);
}

const CLASSES: ReadonlySet<string> = new Set(ERROR_CLASSES);

/** Reads one job log line; undefined when it is not an attempt row (jobs may log other lines). */
export function parseAttemptLogRow(line: string): AttemptLogRow | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const r = value as Record<string, unknown>;
  if (r.type !== 'attempt' || typeof r.attempt !== 'number' || typeof r.errorClass !== 'string') return undefined;
  return {
    type: 'attempt',
    attempt: r.attempt,
    errorClass: (CLASSES.has(r.errorClass) ? r.errorClass : 'unknown') as ErrorClass,
    message: typeof r.message === 'string' ? r.message : '',
    delayMs: typeof r.delayMs === 'number' ? r.delayMs : null,
    worker: typeof r.worker === 'string' ? r.worker : '',
    ts: typeof r.ts === 'number' ? r.ts : 0,
    ...(typeof r.rateLimitedRetry === 'number' ? { rateLimitedRetry: r.rateLimitedRetry } : {}),
    ...(typeof r.budgetDeferral === 'number' ? { budgetDeferral: r.budgetDeferral } : {}),
  };
}
