// Lane ↔ BullMQ queue: each lane is exactly one BullMQ queue named after the lane under the
// configured prefix, so any BullMQ client or tool can work with it.
import { Queue, type JobsOptions } from 'bullmq';
import type { RedisClient } from './redis';
import type { BullpenConfig } from './config';
import { lanePrefix } from './keys';
import type { LanePolicy } from './lanes';

/** The custom backoff type bullpen's workers resolve from the lane policy and the job. */
export const BULLPEN_BACKOFF_TYPE = 'bullpen';

export function laneJobOptions(policy: LanePolicy): JobsOptions {
  return {
    attempts: policy.attempts,
    backoff: { type: BULLPEN_BACKOFF_TYPE },
    removeOnComplete: { age: policy.retention.completed.ageSeconds, count: policy.retention.completed.count },
    removeOnFail: { age: policy.retention.failed.ageSeconds, count: policy.retention.failed.count },
  };
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
