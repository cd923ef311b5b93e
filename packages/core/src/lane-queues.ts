// Lane ↔ BullMQ queue: each lane is exactly one BullMQ queue named after the lane under the
// configured prefix, so any BullMQ client or tool can work with it.
import { Queue, type JobsOptions, type KeepJobs } from 'bullmq';
import type { RedisClient } from './redis';
import type { BullpenConfig } from './config';
import { lanePrefix, laneRegistryKey } from './keys';
import type { LanePolicy } from './lanes';
import type { Logger } from './logger';

/** The custom backoff type bullpen's workers resolve from the lane policy and the job. */
export const BULLPEN_BACKOFF_TYPE = 'bullpen';

/**
 * The options every job of a lane carries: what BullMQ reads from the job itself when an attempt
 * fails (how many attempts, and that the worker's backoff strategy picks the delay). Nothing
 * else: Redis keeps a job whose every field is at most 64 bytes (hash-max-listpack-value) as a
 * compact listpack, about a quarter of the memory of the hash table a longer field turns it into,
 * and cheaper to write and delete. The lane's retention is the worker's (laneRetention).
 */
export function laneJobOptions(policy: LanePolicy): JobsOptions {
  return { attempts: policy.attempts, backoff: { type: BULLPEN_BACKOFF_TYPE } };
}

/**
 * The lane's retention, as BullMQ's Worker options: the worker that finishes a job applies it.
 * Every way bullpen ends a job goes through a lane worker (a job that stalled too often is failed
 * by the worker that picks it up next), so a job needs no copy of it, and a change of the lane's
 * retention applies to the jobs already queued. A job that carries its own removeOnComplete or
 * removeOnFail (added by other BullMQ code) keeps it: BullMQ prefers the job's.
 */
export function laneRetention(policy: LanePolicy): { removeOnComplete: KeepJobs; removeOnFail: KeepJobs } {
  const { completed, failed } = policy.retention;
  return {
    removeOnComplete: { age: completed.ageSeconds, count: completed.count },
    removeOnFail: { age: failed.ageSeconds, count: failed.count },
  };
}

/**
 * Adds `lanes` to the prefix's lane registry (laneRegistryKey). Each app does at start, so that a
 * lane later dropped from the lanes file, jobs and all, is still known to the exporter. Best effort:
 * a failure (Redis full, say) is logged and the app goes on; it records them again at its next start.
 */
export async function registerLanes(redis: RedisClient, prefix: string, lanes: readonly string[], logger: Logger): Promise<void> {
  if (lanes.length === 0) return;
  try {
    await redis.sadd(laneRegistryKey(prefix), ...lanes);
  } catch (err) {
    logger.warn('could not record the lanes in the lane registry', { error: (err as Error).message });
  }
}

export function createLaneQueue(config: BullpenConfig, lane: string, connection: RedisClient): Queue {
  const policy = config.lanes[lane];
  if (!policy) throw new Error(`unknown lane ${lane}`);
  return new Queue(lane, {
    connection,
    prefix: lanePrefix(config.prefix, lane),
    defaultJobOptions: laneJobOptions(policy),
    streams: { events: { maxLen: config.eventsMaxLen } },
  });
}
