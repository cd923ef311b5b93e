// What a worker needs to know about a job's earlier starts when it starts it again: how many starts
// used no attempt, who held the last lease, and how the last attempt ended. Read in one pipelined
// call, only for jobs started before (first starts, the common case, read nothing).
import {
  JOB_FIELD,
  jobKeys,
  parseAttemptLogRow,
  parseLeaseRecord,
  scriptCommand,
  type AttemptLogRow,
  type LeaseRecord,
} from '@bullpen/core';
import type { RedisClient } from '@bullpen/core';

export interface StartHistory {
  /** Starts that ended without using an attempt (see JOB_FIELD.uncountedStarts). */
  uncountedStarts: number;
  /** Of those, the rate-limited retries (see JOB_FIELD.rateLimitedRetries). */
  rateLimitedRetries: number;
  lease: LeaseRecord | undefined;
  /** The job's last attempt row that a worker wrote as its attempt ended, if one is among its last
   * log lines: rows of attempts lost to a stall are passed over (the start they lost is part of
   * the wait, and they chose no delay). */
  lastRow: AttemptLogRow | undefined;
  /** A cancellation was requested while the job was active (JOB_FIELD.cancelRequested). */
  cancelRequested: boolean;
  /** Deferrals by the lane's retry budget of the retry this start is (JOB_FIELD.budgetDeferred);
   * 0 when it was not deferred. */
  budgetDeferrals: number;
}

/** The BullMQ job fields these rules read. */
export interface JobStarts {
  attemptsStarted: number;
  attemptsMade: number;
  timestamp: number;
  opts: { delay?: number };
}

/** Whether this is the job's first start: nothing to read, and a first attempt for the retry budget. */
export function isFirstStart(job: JobStarts): boolean {
  return job.attemptsStarted <= 1 && job.attemptsMade === 0;
}

/** How many of the job's last log lines are read for its last attempt row: enough to pass over the
 * rows of the stalls a lane's maxStalls lets in a row, in most lanes. */
const LAST_ROWS_READ = 4;

export async function readStartHistory(redis: RedisClient, prefix: string, lane: string, jobId: string): Promise<StartHistory> {
  const keys = jobKeys(prefix, lane, jobId);
  // Sent in the same turn, so in one write (write-coalescing.ts); an ioredis pipeline would copy
  // every script defined on the connection onto itself for these two commands.
  const [[uncounted, rateLimited, lease, cancel, deferred], rows] = await Promise.all([
    redis.hmget(keys.job, JOB_FIELD.uncountedStarts, JOB_FIELD.rateLimitedRetries, JOB_FIELD.lease, JOB_FIELD.cancelRequested, JOB_FIELD.budgetDeferred),
    redis.lrange(keys.logs, -LAST_ROWS_READ, -1),
  ]);
  return {
    uncountedStarts: Number(uncounted ?? 0) || 0,
    rateLimitedRetries: Number(rateLimited ?? 0) || 0,
    lease: parseLeaseRecord(lease),
    lastRow: rows
      .map((line) => parseAttemptLogRow(line))
      .reverse()
      .find((row) => row !== undefined && row.errorClass !== 'stalled'),
    cancelRequested: Boolean(cancel),
    budgetDeferrals: Number(deferred ?? 0) || 0,
  };
}

const COUNT_START = 'bullpenCountStart';
interface CountStartClient {
  [COUNT_START](...args: string[]): Promise<number>;
}

/** Counts one start that used no attempt. Call it before the job leaves the active state, so that
 * a crash in between can only hide a reclaim, never report one that did not happen. One script
 * call (lua/count-start.lua): nothing is counted on a job removed meanwhile, which would come back
 * as a hash nothing removes, nor on one whose lock another worker holds under another token. */
export async function countUncountedStart(redis: RedisClient, prefix: string, lane: string, jobId: string, lockToken?: string): Promise<void> {
  const keys = jobKeys(prefix, lane, jobId);
  await scriptCommand<CountStartClient>(redis, COUNT_START, 'count-start', 2)[COUNT_START](keys.job, keys.lock, lockToken ?? '', JOB_FIELD.uncountedStarts);
}

/** What a rate-limited retry that uses no attempt counts on the job hash (recordAttempt's
 * `counts`, with its row): a start that used none, and one of the lane's maxRateLimitedRetries. */
export const RATE_LIMITED_RETRY_COUNTS = [JOB_FIELD.uncountedStarts, JOB_FIELD.rateLimitedRetries] as const;

/** A start whose deferred retry the budget refused again: it used no attempt, and the retry has
 * been deferred once more. Counted as countUncountedStart counts, in the same script call. */
export async function countBudgetDeferral(redis: RedisClient, prefix: string, lane: string, jobId: string, lockToken?: string): Promise<void> {
  const keys = jobKeys(prefix, lane, jobId);
  await scriptCommand<CountStartClient>(redis, COUNT_START, 'count-start', 2)[COUNT_START](
    keys.job,
    keys.lock,
    lockToken ?? '',
    JOB_FIELD.uncountedStarts,
    JOB_FIELD.budgetDeferred,
  );
}

/** The budget granted the deferred retry: the job's next failure starts afresh. */
export async function clearBudgetDeferred(redis: RedisClient, prefix: string, lane: string, jobId: string): Promise<void> {
  await redis.hdel(jobKeys(prefix, lane, jobId).job, JOB_FIELD.budgetDeferred);
}

/**
 * Earlier starts of the job that never finished: BullMQ counts a start when a worker leases the
 * job, and an attempt when the worker records its outcome; starts that used no attempt are counted
 * by bullpen. Whatever is left over was lost with its worker or its lock.
 */
export function lostStarts(job: JobStarts, history: StartHistory | undefined): number {
  return Math.max(0, job.attemptsStarted - 1 - job.attemptsMade - (history?.uncountedStarts ?? 0));
}

/** The worker that held the previous start, when it recorded its lease. */
export function previousWorker(job: JobStarts, history: StartHistory | undefined): string | undefined {
  const lease = history?.lease;
  return lease && lease.ats === job.attemptsStarted - 1 ? lease.worker : undefined;
}

/**
 * When the job could first have started this time: at enqueue plus its delay, or at the end of the
 * backoff chosen after its last failed attempt (the row's time plus its delay; the row is written
 * just before BullMQ schedules the retry, so this is early by that gap, a millisecond or so). For a
 * reclaimed start the wait includes the lost lease and the lock expiry, which is when it waited.
 * A job redriven from the dead letters waits from its redrive (`redrivenAt`, from its envelope).
 */
export function eligibleAt(job: JobStarts, history: StartHistory | undefined, redrivenAt?: number): number {
  const afterEnqueue = Math.max(job.timestamp + (job.opts.delay ?? 0), redrivenAt ?? 0);
  const row = history?.lastRow;
  // A row from before a redrive (its wait ended then) does not move the start of this one.
  return row ? Math.max(afterEnqueue, row.ts + (row.delayMs ?? 0)) : afterEnqueue;
}
