// What a worker says about a job BullMQ's stalled checker found in this process: which worker held
// it, how often it has stalled, and whether it runs again or fails as stalled; and the attempt row
// of the start that was lost, which the worker that ran it could not write.
import {
  appendAttemptRow,
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
  policy: Pick<LanePolicy, 'maxStalls' | 'lockDurationMs'>;
  redis: RedisClient;
  logger: Logger;
  emit<K extends keyof WorkerEventMap>(event: K, payload: WorkerEventMap[K]): void;
}

/**
 * Logs and emits a stall. The job may have been leased again before its record is read (BullMQ
 * wakes the fetching workers as it moves the job back, so this is common): then the stalled start
 * is the one before the current one. A re-lease is known by `startHere` (the attemptsStarted of
 * this worker's start of the job, when it already runs it) or by the job's processedOn, which a
 * lease sets: the stalled start was leased at least a lock duration ago, a new one just now.
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
  let lostAttempt: { attempt: number; keepLogs: number | undefined } | undefined;
  try {
    const [ats, lease, stc, defa, finishedOn, failedReason, atm, opts, processedOn] = await redis.hmget(
      jobKeys(config.prefix, lane, jobId).job,
      'ats',
      JOB_FIELD.lease,
      ...BULLMQ_STALL_FIELDS,
      'finishedOn',
      'failedReason',
      'atm',
      'opts',
      'processedOn',
    );
    const record = parseLeaseRecord(lease);
    const current = Number(ats);
    const leasedAgain = startHere === current || Number(processedOn ?? 0) > Date.now() - policy.lockDurationMs;
    const stalledStart = leasedAgain ? current - 1 : current;
    if (record && record.ats === stalledStart) previousWorker = record.worker;
    stalls = stc === null || stc === undefined ? undefined : Number(stc);
    const failedAsStalled = Boolean(finishedOn) && failedReason === STALLED_OUT_REASON;
    failsAsStalled = Boolean(defa) || failedAsStalled;
    // A stall uses no attempt: the lost start ran attempt attemptsMade + 1, unless the job has
    // been failed as stalled since, which counted that attempt.
    if (ats !== null && ats !== undefined) {
      const made = Number(atm ?? 0) || 0;
      lostAttempt = { attempt: failedAsStalled ? Math.max(1, made) : made + 1, keepLogs: keepLogsOf(opts) };
    }
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
  if (lostAttempt) await recordLostAttempt(deps, jobId, { ...lostAttempt, previousWorker, stalls, failsAsStalled });
}

/**
 * The worker that ran a stalled start died or stopped renewing its lock, and wrote no row for it:
 * the worker that found the stall writes one (error class `stalled`), so that the history shows
 * every start that ended, a dead letter's included. Only this worker's stalled checker reported
 * this stall, and a start whose lock was lost records nothing itself, so the row is written once.
 */
async function recordLostAttempt(
  deps: StallReportDeps,
  jobId: string,
  lost: { attempt: number; keepLogs: number | undefined; previousWorker: string | undefined; stalls: number | undefined; failsAsStalled: boolean },
): Promise<void> {
  const { config, lane, redis, logger, policy } = deps;
  const held = lost.previousWorker ? `worker ${lost.previousWorker}` : 'its worker';
  const count = lost.stalls === undefined ? 'stalled' : `stall ${lost.stalls}`;
  const outcome = lost.failsAsStalled
    ? `more than the lane's maxStalls (${policy.maxStalls}): the job fails as stalled`
    : `within the lane's maxStalls (${policy.maxStalls}): moved back to wait to run again`;
  const message = `attempt lost: ${held} stopped renewing the job's lock (it died or stalled); ${count}, found by ${config.workerId}, ${outcome}`;
  try {
    await appendAttemptRow(redis, {
      prefix: config.prefix,
      lane,
      jobId,
      row: { attempt: lost.attempt, errorClass: 'stalled', message, delayMs: null, worker: lost.previousWorker ?? '', ts: Date.now() },
      ...(lost.keepLogs !== undefined ? { keepLogs: lost.keepLogs } : {}),
    });
  } catch (err) {
    logger.warn('could not record the attempt a stalled job lost', { job_id: jobId, error: (err as Error).message });
  }
}

/** BullMQ's keepLogs from the job's stored options (`kl`); undefined when it keeps them all. */
function keepLogsOf(opts: string | null | undefined): number | undefined {
  if (!opts) return undefined;
  try {
    const kl = (JSON.parse(opts) as { kl?: unknown }).kl;
    return typeof kl === 'number' && kl > 0 ? kl : undefined;
  } catch {
    return undefined;
  }
}
