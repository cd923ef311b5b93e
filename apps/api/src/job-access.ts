// Reading and cancelling one job, as its tenant sees it: a job of another tenant, or one that is
// not a job at all, is "not found" exactly like a job that does not exist.
import { Job, type Queue } from 'bullmq';
import type { RedisClient } from '@bullpen/core';
import { cancelChannel, unwrapJobData, type BullpenConfig } from '@bullpen/core';
import type { LaneRegistry } from './lane-registry';
import { removeJob, type RemovableState } from './job-removal';
import { ProblemError, writeOutcomeUnknown } from './problem';
import type { RedisGuard } from './redis-guard';
import { jobStatusView, type JobStateView, type JobStatus } from './views';

/** Attempt history is read from the newest log rows; more attempts than this are not kept. */
const MAX_LOG_ROWS = 200;
/** Ids a job may have; anything else (a colon, a BullMQ key name) cannot name a job hash. */
const JOB_ID = /^[A-Za-z0-9_.-]{1,256}$/;
/** The states of a job not started yet. A running job is asked to abort instead; a finished one is left. */
const CANCEL_REMOVES: readonly RemovableState[] = ['waiting', 'delayed', 'prioritized', 'waiting-children'];

export interface JobAccessDeps {
  config: BullpenConfig;
  redis: RedisClient;
  guard: RedisGuard;
  lanes: LaneRegistry;
}

export type CancelOutcome =
  | { kind: 'removed'; body: { id: string; lane: string; state: 'removed'; previousState: JobStateView } }
  | { kind: 'cancel_requested'; body: { id: string; lane: string; state: 'active'; cancelRequested: true } };

/** The message workers receive on cancelChannel(prefix) to abort an active job. */
export interface CancelMessage {
  lane: string;
  jobId: string;
}

function notFound(lane: string, id: string): ProblemError {
  return new ProblemError('job_not_found', `No job ${JSON.stringify(id)} in lane ${lane}`);
}

function finished(lane: string, id: string, state: 'completed' | 'failed'): ProblemError {
  const after =
    state === 'completed'
      ? 'its result stays readable with GET'
      : `it is a dead letter, which DELETE /v1/lanes/${lane}/dead removes (with {"ids":[${JSON.stringify(id)}]})`;
  return new ProblemError('job_finished', `Job ${JSON.stringify(id)} in lane ${lane} has already ${state}: nothing was cancelled or removed; ${after}`, { state });
}

export class JobAccess {
  constructor(private readonly deps: JobAccessDeps) {}

  async status(lane: string, id: string, tenant: string): Promise<JobStatus> {
    const { guard } = this.deps;
    const queue = this.deps.lanes.queue(lane);
    // The state first: BullMQ changes a job's state and its fields in one script, so fields read
    // after a finished state are the final ones (read before, they could predate it).
    if (!JOB_ID.test(id) || Object.hasOwn(queue.keys, id)) throw notFound(lane, id);
    const state = await guard.run(() => queue.getJobState(id));
    if (state === 'unknown') throw notFound(lane, id);
    const job = await this.findVisible(queue, lane, id, tenant);
    const logs = await guard.run(() => queue.getJobLogs(id, 0, MAX_LOG_ROWS - 1, false));
    // Newest first from BullMQ; the history reads oldest first.
    return jobStatusView(job, lane, state, [...logs.logs].reverse());
  }

  /**
   * Removes a job that has not started. A running job cannot be removed (its worker holds the
   * lock), so its worker is asked to abort it; the job then fails or completes as usual. A job
   * that has finished is left as it is, with its result: there is nothing left to cancel, and a
   * dead letter is removed by a purge. Which of the three is decided on the job's state in Redis
   * in one step (job-removal.ts); a removed job's idempotency key goes on naming it.
   */
  async cancel(lane: string, id: string, tenant: string): Promise<CancelOutcome> {
    const { guard, config, redis } = this.deps;
    const queue = this.deps.lanes.queue(lane);
    await this.findVisible(queue, lane, id, tenant);
    const target = { redis, queue, prefix: config.prefix, lane, eventsMaxLen: config.eventsMaxLen };
    // An active job is marked in the same step: a worker that starts it later (its worker died, or
    // the message reached no one) aborts it too.
    const outcome = await guard.run(() => removeJob(target, id, CANCEL_REMOVES, { cancelRequestedAt: Date.now() })).catch((err: unknown) => {
      throw writeOutcomeUnknown(err, `the cancellation of job ${id}`);
    });
    if (outcome.kind === 'not_found') throw notFound(lane, id);
    if (outcome.kind === 'removed') return { kind: 'removed', body: { id, lane, state: 'removed', previousState: outcome.previousState } };
    if (outcome.state === 'completed' || outcome.state === 'failed') throw finished(lane, id, outcome.state);
    if (outcome.state !== 'active') throw new Error(`job ${id} was kept as ${outcome.state}, which a cancel removes`);
    const message: CancelMessage = { lane, jobId: id };
    await guard.run(() => redis.publish(cancelChannel(config.prefix), JSON.stringify(message))).catch((err: unknown) => {
      throw writeOutcomeUnknown(err, `the request to abort job ${id}`);
    });
    return { kind: 'cancel_requested', body: { id, lane, state: 'active', cancelRequested: true } };
  }

  private async findVisible(queue: Queue, lane: string, id: string, tenant: string): Promise<Job> {
    if (!JOB_ID.test(id) || Object.hasOwn(queue.keys, id)) throw notFound(lane, id);
    const job = await this.deps.guard.run(() => Job.fromId(queue, id));
    if (!job || typeof job.name !== 'string' || !Number.isFinite(job.timestamp)) throw notFound(lane, id);
    const { meta } = unwrapJobData(job.data);
    // Jobs added by plain BullMQ producers carry no tenant: only visible without authentication.
    const visible = meta ? meta.tenant === tenant : this.deps.config.authDisabled;
    if (!visible) throw notFound(lane, id);
    return job;
  }
}
