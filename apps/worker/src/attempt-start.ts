// What an attempt does about the job's earlier starts before its handler runs: a lease taken while
// intake is stopped is handed back (as is one whose handler a shutdown stopped), and a job
// started before has its start history read, from which an earlier start that never finished is
// reported as a reclaim.
import { LANE_EVENT } from '@bullpen/core';
import { WaitingError } from 'bullmq';
import type { AnyJob, AttemptDeps } from './attempt-deps';
import type { AttemptRef } from './events';
import { countUncountedStart, lostStarts, previousWorker, readStartHistory, type StartHistory } from './job-history';

/**
 * Why a leased job goes back to the wait list: intake is stopped (BullMQ may hand a paused worker
 * one more job, from a fetch already blocked in Redis when the pause began; it must not run here),
 * the lane leased it beyond its share of the handler slots (from a fetch opened under a higher
 * lease limit: it would wait here for a slot while another worker process could run it), or the
 * worker's shutdown grace period ended with the job's handler still running (shutdown-hand-back.ts).
 */
export type HandBackReason = 'intake_stopped' | 'shutdown' | 'beyond_share';

/**
 * Puts a leased job back at the head of the wait list. The start is counted as using no attempt,
 * so that it is not mistaken for a crash. Returns the error that tells BullMQ the job has moved,
 * or undefined when it could not be moved (logged).
 */
export async function handBack(
  deps: AttemptDeps,
  job: AnyJob,
  token: string | undefined,
  reason: HandBackReason = 'intake_stopped',
): Promise<Error | undefined> {
  const { redis, config, lane, logger } = deps;
  try {
    await countUncountedStart(redis, config.prefix, lane, job.id ?? '', token);
    await job.moveToWait(token);
    return new WaitingError();
  } catch (err) {
    const failure = {
      intake_stopped: 'could not hand a job back while intake is stopped; running it',
      beyond_share: 'could not hand back a job leased beyond the lane\'s share of the handler slots; it waits for a slot',
      shutdown: 'could not hand back a job whose handler the shutdown stopped; it is reclaimed once its lock expires',
    }[reason];
    logger.warn(failure, { job_id: job.id, error: (err as Error).message });
    return undefined;
  }
}

/** The job's start history; undefined when it cannot be read (the attempt runs all the same). */
export function readHistory(deps: AttemptDeps, jobId: string): Promise<StartHistory | undefined> {
  const { redis, config, lane, logger } = deps;
  return readStartHistory(redis, config.prefix, lane, jobId).catch((err: unknown) => {
    logger.warn('could not read the job history', { job_id: jobId, error: (err as Error).message });
    return undefined;
  });
}

/** Reports a reclaim when an earlier start of the job never finished. */
export function detectReclaim(deps: AttemptDeps, job: AnyJob, ref: AttemptRef, history: StartHistory | undefined): void {
  const lost = lostStarts(job, history);
  if (lost === 0 || !history) return;
  const previous = previousWorker(job, history);
  deps.logger.warn('reclaimed a job whose earlier start never finished', {
    job_id: ref.jobId,
    attempt: ref.attempt,
    previous_worker: previous,
    lost_starts: lost,
  });
  deps.emit('job:reclaimed', { ...ref, previousWorker: previous, lostStarts: lost });
  deps.publish({
    event: LANE_EVENT.reclaimed,
    jobId: ref.jobId,
    name: ref.jobName,
    lostStarts: lost,
    ...(previous !== undefined ? { previousWorker: previous } : {}),
    ...(ref.tenant !== undefined ? { tenant: ref.tenant } : {}),
    attempt: ref.attempt,
    worker: ref.workerId,
  });
}
