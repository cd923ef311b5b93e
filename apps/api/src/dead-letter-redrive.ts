// Redriving one dead letter: back into its lane with fresh attempts and a fresh deadline, its
// history kept, and only while it is still dead (dead-letters.ts claims it first).
import { ErrorCode, type Job } from 'bullmq';
import { BULLMQ_STALL_FIELDS, JOB_FIELD, jobKeys, laneStateKeys, scriptCommand, unwrapJobData, wrapJobData, type BullpenConfig, type LanePolicy, type RedisClient } from '@bullpen/core';
import type { RedriveStatus } from './views';

const REDRIVE_RESET = 'bullpenRedriveReset';
interface RedriveResetClient {
  [REDRIVE_RESET](...args: (string | number)[]): Promise<number>;
}

export interface RedriveDeps {
  redis: RedisClient;
  config: Pick<BullpenConfig, 'prefix'>;
}

function errorCode(err: unknown): unknown {
  return typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
}

/** Redrives `job`, found dead (and claimed) in its lane. */
export async function redriveDeadLetter(deps: RedriveDeps, job: Job, policy: LanePolicy): Promise<RedriveStatus> {
  try {
    const { data, meta } = unwrapJobData(job.data);
    const now = Date.now();
    const deadlineAt = freshDeadline(job, meta, policy, now);
    // Before the retry, so that no worker can take the job with its spent deadline. The worker
    // counts the job's wait for a slot from redrivenAt, not from its enqueue.
    if (meta) await job.updateData(wrapJobData(data, { ...meta, ...(deadlineAt !== undefined ? { deadlineAt } : {}), redrivenAt: now }));
    // The worker's own start bookkeeping goes with BullMQ's counters, or a stale lease would
    // make the first new start look like a reclaim; so does BullMQ's stall count, or a job
    // that died of stalls would fail at its first stall after the redrive; and a job cancelled
    // before is an operator's to run again.
    // Written only while the job is still dead: retention (removeOnFail) may have removed it since
    // it was found, and a write then would leave a hash behind that nothing ever removes.
    const { prefix } = deps.config;
    const reset = await scriptCommand<RedriveResetClient>(deps.redis, REDRIVE_RESET, 'redrive-reset', 2)[REDRIVE_RESET](
      jobKeys(prefix, job.queueName, String(job.id)).job,
      laneStateKeys(prefix, job.queueName).failed,
      String(job.id),
      JOB_FIELD.redrivenAt,
      now,
      JOB_FIELD.uncountedStarts,
      JOB_FIELD.rateLimitedRetries,
      JOB_FIELD.lease,
      JOB_FIELD.cancelRequested,
      JOB_FIELD.budgetDeferred,
      ...BULLMQ_STALL_FIELDS,
    );
    if (reset !== 1) return reset === 0 ? 'not_found' : 'not_dead';
    await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
    return 'redriven';
  } catch (err) {
    // Redriven or purged by another call since it was found dead.
    if (errorCode(err) === ErrorCode.JobNotExist) return 'not_found';
    if (errorCode(err) === ErrorCode.JobNotInState) return 'not_dead';
    throw err;
  }
}

/**
 * The deadline a redriven job gets: as long from now as it first had from its enqueue, at every
 * redrive. A job without one in its envelope, in a lane with deadlineMs, would have the lane's
 * deadline counted from its original enqueue by the worker (and fail at once), so it gets the
 * lane's from now.
 * Jobs without an envelope (plain BullMQ producers) are left as they are.
 */
export function freshDeadline(
  job: Pick<Job, 'timestamp'>,
  meta: ReturnType<typeof unwrapJobData>['meta'],
  policy: Pick<LanePolicy, 'deadlineMs'>,
  nowMs: number,
): number | undefined {
  if (!meta) return undefined;
  // After a redrive deadlineAt is counted from redrivenAt, not from the enqueue: counting a later
  // redrive's budget from the enqueue would add every wait in between to it.
  if (meta.deadlineAt !== undefined) return nowMs + Math.max(0, meta.deadlineAt - (meta.redrivenAt ?? job.timestamp));
  return policy.deadlineMs !== undefined ? nowMs + policy.deadlineMs : undefined;
}
