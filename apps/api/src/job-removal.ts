// Removing a job for a cancel or a purge without forgetting its idempotency key (lua/remove-job.lua).
// BullMQ's own removal deletes the key: a client that repeats its submission after the job was
// cancelled or purged, as a client retrying a redis_timeout does, would add the work again.
import type { Queue } from 'bullmq';
import type { RedisClient } from '@bullpen/core';
import { jobChildKeys, jobKeys, laneEventsKey, laneStateKeys, scriptCommand } from '@bullpen/core';
import type { JobStateView } from './views';

const REMOVE_JOB = 'bullpenRemoveJob';
interface RemoveJobClient {
  [REMOVE_JOB](...args: (string | number)[]): Promise<[string, string]>;
}

/** The states a job can be removed in; an active job never is (its worker holds it). */
export type RemovableState = 'waiting' | 'delayed' | 'prioritized' | 'waiting-children' | 'completed' | 'failed';

export type RemovalOutcome =
  /** Removed; its idempotency key goes on naming it until the key expires. */
  | { kind: 'removed'; previousState: RemovableState }
  /** In a state not asked for (`active` included); nothing was changed. */
  | { kind: 'kept'; state: JobStateView }
  /** No such job, or one in no state. */
  | { kind: 'not_found' };

export interface RemovalTarget {
  redis: RedisClient;
  queue: Queue;
  prefix: string;
  lane: string;
  /** The lane stream's approximate maximum length (config.eventsMaxLen), for the removed event. */
  eventsMaxLen: number;
}

/** Removes job `id` if it is in one of `states`, deciding on its state in Redis in the same step. */
export async function removeJob({ redis, queue, prefix, lane, eventsMaxLen }: RemovalTarget, id: string, states: readonly RemovableState[]): Promise<RemovalOutcome> {
  const job = jobKeys(prefix, lane, id);
  const children = jobChildKeys(prefix, lane, id);
  const lanes = laneStateKeys(prefix, lane);
  const [outcome, state] = await scriptCommand<RemoveJobClient>(redis, REMOVE_JOB, 'remove-job', 16)[REMOVE_JOB](
    job.job,
    job.logs,
    job.lock,
    children.dependencies,
    children.processed,
    children.failed,
    children.unsuccessful,
    lanes.wait,
    lanes.paused,
    lanes.delayed,
    lanes.prioritized,
    lanes.waitingChildren,
    lanes.active,
    lanes.completed,
    lanes.failed,
    laneEventsKey(prefix, lane),
    id,
    eventsMaxLen,
    ...states,
  );
  switch (outcome) {
    case 'removed':
      return { kind: 'removed', previousState: state as RemovableState };
    case 'kept':
      return { kind: 'kept', state: state as JobStateView };
    case 'linked':
      // A job of a BullMQ flow or job scheduler (a plain BullMQ producer's): BullMQ keeps the jobs
      // linked to it consistent, and forgets its deduplication key. 0: a worker took it meanwhile.
      return (await queue.remove(id)) === 1 ? { kind: 'removed', previousState: state as RemovableState } : { kind: 'kept', state: 'active' };
    case 'not_found':
      return { kind: 'not_found' };
    default:
      throw new Error(`remove-job answered ${JSON.stringify(outcome)}`);
  }
}
