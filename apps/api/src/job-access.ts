// Reading and cancelling one job, as its tenant sees it: a job of another tenant, or one that is
// not a job at all, is "not found" exactly like a job that does not exist.
import { Job, type Queue } from 'bullmq';
import type { RedisClient } from '@bullpen/core';
import { cancelChannel, markCancelRequested, unwrapJobData, type BullpenConfig } from '@bullpen/core';
import type { LaneRegistry } from './lane-registry';
import { removeJob, type RemovableState } from './job-removal';
import { ProblemError, writeOutcomeUnknown } from './problem';
import type { RedisGuard } from './redis-guard';
import { jobStatusView, type JobStateView, type JobStatus } from './views';

/** Attempt history is read from the newest log rows; more attempts than this are not kept. */
const MAX_LOG_ROWS = 200;
/** Ids a job may have; anything else (a colon, a BullMQ key name) cannot name a job hash. */
const JOB_ID = /^[A-Za-z0-9_.-]{1,256}$/;
/** Every state but active: a running job is asked to abort instead. */
const CANCEL_REMOVES: readonly RemovableState[] = ['waiting', 'delayed', 'prioritized', 'waiting-children', 'completed', 'failed'];

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
   * Removes a job that is not running. A running job cannot be removed (its worker holds the
   * lock), so its worker is asked to abort it; the job then fails or completes as usual. A removed
   * job's idempotency key goes on naming it (job-removal.ts).
   */
  async cancel(lane: string, id: string, tenant: string): Promise<CancelOutcome> {
    const { guard, config, redis } = this.deps;
    const queue = this.deps.lanes.queue(lane);
    await this.findVisible(queue, lane, id, tenant);
    const target = { redis, queue, prefix: config.prefix, lane, eventsMaxLen: config.eventsMaxLen };
    const removal = await guard.run(() => removeJob(target, id, CANCEL_REMOVES)).catch((err: unknown) => {
      throw writeOutcomeUnknown(err, `the removal of job ${id}`);
    });
    if (removal.kind === 'not_found') throw notFound(lane, id);
    if (removal.kind === 'removed') return { kind: 'removed', body: { id, lane, state: 'removed', previousState: removal.previousState } };
    // Marked on the job first: a worker that starts it later (its worker died, or the message
    // reached no one) aborts it too.
    const marked = await guard.run(() => markCancelRequested(this.deps.redis, this.deps.config.prefix, lane, id)).catch((err: unknown) => {
      throw writeOutcomeUnknown(err, `the request to abort job ${id}`);
    });
    if (!marked) throw notFound(lane, id);
    const message: CancelMessage = { lane, jobId: id };
    await guard.run(() => this.deps.redis.publish(cancelChannel(this.deps.config.prefix), JSON.stringify(message))).catch((err: unknown) => {
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
