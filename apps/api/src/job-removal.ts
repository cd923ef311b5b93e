// Removing a job for a cancel or a purge without forgetting its idempotency key (lua/remove-job.lua).
// BullMQ's own removal deletes the key: a client that repeats its submission after the job was
// cancelled or purged, as a client retrying a redis_timeout does, would add the work again. The
// job's state is read and acted on in one step, so a job that finished or started meanwhile is
// never removed.
import type { Queue } from 'bullmq';
import type { RedisClient } from '@bullpen/core';
import { JOB_FIELD, jobChildKeys, jobKeys, laneEventsKey, laneStateKeys, scriptCommand } from '@bullpen/core';
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
  /** In a state not asked for (`active` included); nothing was changed but the cancel mark. */
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

export interface RemovalOptions {
  /**
   * When the job is active, mark it as cancelled on request (JOB_FIELD.cancelRequested) at this
   * epoch ms, so that a worker that starts it again aborts it too; default: no mark.
   */
  cancelRequestedAt?: number;
}

/** BullMQ's removal of a linked job found it taken by a worker this many times in a row: give up. */
const MAX_LINKED_ROUNDS = 3;

/**
 * Removes job `id` if it is in one of `states`, deciding on its state in Redis in the same step.
 * A job linked to others (lua/remove-job.lua) is removed by BullMQ, which forgets its key.
 */
export async function removeJob(target: RemovalTarget, id: string, states: readonly RemovableState[], options: RemovalOptions = {}): Promise<RemovalOutcome> {
  for (let round = 1; ; round += 1) {
    const outcome = await decide(target, id, states, options);
    if (outcome.kind !== 'linked') return outcome;
    if ((await target.queue.remove(id)) === 1) return { kind: 'removed', previousState: outcome.state };
    // 0: a worker took it between the two calls; decided again, it is marked or found finished.
    // (BullMQ removes a job in any state but active: one that finished between the two calls is
    // removed all the same, as before bullpen decided cancels itself; only linked jobs.)
    if (round === MAX_LINKED_ROUNDS) throw new Error(`job ${id} of lane ${target.lane} was taken by a worker at each of ${round} removals`);
  }
}

async function decide({ redis, prefix, lane, eventsMaxLen }: RemovalTarget, id: string, states: readonly RemovableState[], options: RemovalOptions): Promise<RemovalOutcome | { kind: 'linked'; state: RemovableState }> {
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
    options.cancelRequestedAt === undefined ? '' : JOB_FIELD.cancelRequested,
    options.cancelRequestedAt ?? '',
    ...states,
  );
  switch (outcome) {
    case 'removed':
      return { kind: 'removed', previousState: state as RemovableState };
    case 'kept':
      return { kind: 'kept', state: state as JobStateView };
    case 'linked':
      // A job of a BullMQ flow or job scheduler (a plain BullMQ producer's): BullMQ keeps the jobs
      // linked to it consistent.
      return { kind: 'linked', state: state as RemovableState };
    case 'not_found':
      return { kind: 'not_found' };
    default:
      throw new Error(`remove-job answered ${JSON.stringify(outcome)}`);
  }
}
