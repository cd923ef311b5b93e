// Fields bullpen's workers add to a BullMQ job hash, beside BullMQ's own (BullMQ ignores fields it
// does not know). Named here so that every app reads and clears them the same way.

export const JOB_FIELD = {
  /**
   * Starts of the job that ended without using one of its attempts: rate-limited retries on a lane
   * with `rateLimitedConsumesAttempt: false`, and leases handed back while a worker's intake was
   * paused. BullMQ counts every start in `attemptsStarted`, so a worker needs this to tell a start
   * that never finished (a crashed worker) from one that did. A redrive that resets BullMQ's
   * attempt counters should delete it too.
   */
  uncountedStarts: 'bp:uncounted',
  /** Rate-limited retries of the job that used no attempt (`rateLimitedConsumesAttempt: false`),
   * bounded by the lane's `maxRateLimitedRetries`. A redrive deletes it. */
  rateLimitedRetries: 'bp:rl_retries',
  /** JSON `{ats, worker}`: which worker held start number `ats`, written once that start has run
   * for a while, so that a worker reclaiming the job after a crash can name the one that crashed. */
  lease: 'bp:lease',
  /** Epoch ms of the job's last redrive from the dead letters: from then on it waits in line again,
   * so the exporter's oldest-waiting age counts from it rather than from the enqueue. */
  redrivenAt: 'bp:redriven',
  /** Epoch ms of a cancellation requested while the job was active (remove-job.lua, for a
   * cancel): a worker that starts the job again aborts it. A redrive clears it. */
  cancelRequested: 'bp:cancel',
  /**
   * Set while the job's next retry is one the lane's retry budget refused and deferred: the start
   * that comes due asks the budget again before its handler runs, so that a deferred retry reaches
   * the dependency only once the budget grants it. Its value counts the deferrals of that retry (1
   * after the failed attempt's, one more per refusal when it came due). Deleted when the budget
   * grants the retry; a redrive deletes it too.
   */
  budgetDeferred: 'bp:budget_deferred',
} as const;

/** BullMQ's own job fields a redrive resets beside its attempt counters: the stall count (so
 * that a redriven job gets the lane's maxStalls again) and a pending stall failure. */
export const BULLMQ_STALL_FIELDS = ['stc', 'defa'] as const;

export interface LeaseRecord {
  /** BullMQ's attemptsStarted of the start this record belongs to. */
  ats: number;
  /** WORKER_ID of the worker that held it. */
  worker: string;
}

export function formatLeaseRecord(record: LeaseRecord): string {
  return JSON.stringify({ ats: record.ats, worker: record.worker });
}

export function parseLeaseRecord(raw: string | null | undefined): LeaseRecord | undefined {
  if (!raw) return undefined;
  try {
    const value = JSON.parse(raw) as Partial<LeaseRecord>;
    if (typeof value.ats === 'number' && typeof value.worker === 'string') return { ats: value.ats, worker: value.worker };
  } catch {
    // fall through
  }
  return undefined;
}
