// What a worker says about a job BullMQ's stalled checker found in this process: which worker held
// it, how often it has stalled, and whether it runs again or fails as stalled.
import {
  BULLMQ_STALL_FIELDS,
  JOB_FIELD,
  STALLED_OUT_REASON,
  jobKeys,
  parseLeaseRecord,
  type BullpenConfig,
  type LanePolicy,
  type Logger,
  type RedisClient,
} from '@bullpen/core';
import type { WorkerEventMap } from './events';

export interface StallReportDeps {
  config: BullpenConfig;
  lane: string;
  policy: Pick<LanePolicy, 'maxStalls'>;
  redis: RedisClient;
  logger: Logger;
  emit<K extends keyof WorkerEventMap>(event: K, payload: WorkerEventMap[K]): void;
}

/**
 * Logs and emits a stall. The job may have been leased again before its record is read: by this
 * worker (`startHere`, the attemptsStarted of its start here, is then the current one, so the
 * stalled start is the one before) or by another one (attemptsStarted has moved on and the lease
 * record no longer fits: the previous worker is unknown).
 *
 * BullMQ moves every stalled job back to wait; one that has stalled more often than maxStalls is
 * marked to fail there (its deferred failure), and the next worker to take it fails it as stalled
 * without running it. That worker clears the mark, so a job already failed so counts too.
 */
export async function reportStall(deps: StallReportDeps, jobId: string, startHere: number | undefined): Promise<void> {
  const { config, lane, redis, logger, policy } = deps;
  let previousWorker: string | undefined;
  let stalls: number | undefined;
  let failsAsStalled = false;
  try {
    const [ats, lease, stc, defa, finishedOn, failedReason] = await redis.hmget(
      jobKeys(config.prefix, lane, jobId).job,
      'ats',
      JOB_FIELD.lease,
      ...BULLMQ_STALL_FIELDS,
      'finishedOn',
      'failedReason',
    );
    const record = parseLeaseRecord(lease);
    const current = Number(ats);
    const stalledStart = startHere === current ? current - 1 : current;
    if (record && record.ats === stalledStart) previousWorker = record.worker;
    stalls = stc === null || stc === undefined ? undefined : Number(stc);
    failsAsStalled = Boolean(defa) || (Boolean(finishedOn) && failedReason === STALLED_OUT_REASON);
  } catch (err) {
    logger.debug('could not read the lease of a stalled job', { job_id: jobId, error: (err as Error).message });
  }
  const fields = { job_id: jobId, previous_worker: previousWorker ?? null, stalls: stalls ?? null, max_stalls: policy.maxStalls };
  if (failsAsStalled) {
    logger.warn("job stalled more often than its lane's maxStalls allows: it fails as stalled, without running again", fields);
  } else {
    logger.warn('job stalled: its lock expired and it was moved back to wait', fields);
  }
  deps.emit('job:stalled', { lane, jobId, workerId: config.workerId, previousWorker, failsAsStalled });
}
