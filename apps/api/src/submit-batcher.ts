// Single-job submissions that reach Redis in the same turn of the event loop go together: one
// admission call for all their ids and BullMQ's add scripts sent together, in place of two
// round trips each. Under load many requests are parsed in one turn, so a busy API pays a write
// and a read for many jobs; an idle one sends each job alone, one turn later than it would have.
// Each submission keeps its own answer: admission still grants room in arrival order, and a job
// whose add fails fails alone. The jobs are independent, so their adds are not a transaction.
import { Job, type Queue } from 'bullmq';
import {
  laneJobOptions,
  releaseAdmission,
  reserveAdmission,
  type BullpenConfig,
  type LanePolicy,
  type RedisClient,
  type Reservation,
} from '@bullpen/core';
import type { LaneRegistry } from './lane-registry';
import type { ReplicaWait } from './replica-wait';
import { isConnectionFailure, type RedisGuard } from './redis-guard';
import type { PreparedJob } from './submission';

/** What became of one submission: added (the job, and the id Redis answered), or refused for room. */
export type BatchedAdd = { admitted: true; id: string; job: Job } | { admitted: false; backlog: number };

/** Why a submission failed: in the admission call (nothing was added) or in the add itself. */
export class BatchedAddError extends Error {
  constructor(
    readonly step: 'admission' | 'add',
    override readonly cause: unknown,
    /**
     * The id Redis answered for the job when the add itself succeeded and what failed came after
     * it (the replicas did not confirm): a replayed idempotency key's original job, not the id the
     * submission was prepared with. Undefined when Redis did not answer the add.
     */
    readonly jobId?: string,
  ) {
    super(`${step} failed: ${(cause as Error)?.message ?? String(cause)}`, { cause });
  }
}

interface Pending {
  prepared: PreparedJob;
  policy: LanePolicy;
  /** Called once the job has room, just before it is added (the producer span starts here). */
  beforeAdd: (() => void) | undefined;
  resolve(outcome: BatchedAdd): void;
  reject(err: BatchedAddError): void;
}

export interface SubmitBatcherDeps {
  config: BullpenConfig;
  redis: RedisClient;
  guard: RedisGuard;
  lanes: LaneRegistry;
  /** Replicas to wait for before a job counts as added (API_REDIS_WAIT_REPLICAS). */
  replicas?: ReplicaWait;
}

export class SubmitBatcher {
  /** Submissions waiting for this turn's flush, by lane. */
  private pending = new Map<string, Pending[]>();
  private scheduled = false;

  constructor(private readonly deps: SubmitBatcherDeps) {}

  /** Admits and adds one job with the others of this turn; rejects with BatchedAddError. */
  add(lane: string, policy: LanePolicy, prepared: PreparedJob, beforeAdd?: () => void): Promise<BatchedAdd> {
    return new Promise<BatchedAdd>((resolve, reject) => {
      let queued = this.pending.get(lane);
      if (!queued) {
        queued = [];
        this.pending.set(lane, queued);
      }
      queued.push({ prepared, policy, beforeAdd, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    const batches = this.pending;
    this.pending = new Map();
    for (const [lane, items] of batches) void this.send(lane, items);
  }

  private async send(lane: string, items: readonly Pending[]): Promise<void> {
    const { config, redis, guard, lanes } = this.deps;
    const { policy } = items[0] as Pending;
    const ids = items.map((item) => item.prepared.jobId);
    let granted: number;
    let backlog: number;
    let reservation: Reservation;
    try {
      ({ granted, backlog, reservation } = await guard.run(() =>
        reserveAdmission(redis, { prefix: config.prefix, lane, maxQueueSize: policy.maxQueueSize, ids }),
      ));
    } catch (err) {
      for (const item of items) item.reject(new BatchedAddError('admission', err));
      return;
    }
    for (const item of items.slice(granted)) item.resolve({ admitted: false, backlog });
    const admitted = items.slice(0, granted);
    if (admitted.length === 0) return;
    try {
      for (const item of admitted) item.beforeAdd?.();
      const queue = lanes.queue(lane);
      const jobs = buildJobs(queue, policy, admitted);
      let replies: AddReply[];
      try {
        replies = await guard.run(() => addEach(queue, jobs));
      } catch (err) {
        for (const item of admitted) item.reject(new BatchedAddError('add', err));
        return;
      }
      // One WAIT for the whole batch: it covers every write sent before it on the connection.
      let unreplicated: unknown;
      if (this.deps.replicas?.enabled && replies.some((reply) => !('err' in reply))) {
        await this.deps.replicas.confirm(lane).catch((err: unknown) => (unreplicated = err));
      }
      admitted.forEach((item, i) => {
        const reply = replies[i] as AddReply;
        if ('err' in reply) item.reject(new BatchedAddError('add', reply.err));
        else if (unreplicated !== undefined) item.reject(new BatchedAddError('add', unreplicated, reply.id));
        else item.resolve({ admitted: true, id: reply.id, job: jobs[i] as Job });
      });
    } catch (err) {
      // A bug in building the batch (nothing was sent): each request fails, none hangs, and the
      // process does not die of an unhandled rejection. Settled submissions ignore this.
      for (const item of admitted) item.reject(new BatchedAddError('add', err));
    } finally {
      releaseAdmission(redis, reservation);
    }
  }
}

/** Jobs built by hand get the lane's defaults here, as the Queue's defaultJobOptions would give. */
function buildJobs(queue: Queue, policy: LanePolicy, items: readonly Pending[]): Job[] {
  const defaults = laneJobOptions(policy);
  return items.map(({ prepared }) => new Job(queue, prepared.name, prepared.data, { ...defaults, ...prepared.opts }, prepared.jobId));
}

type AddReply = { id: string } | { err: unknown };

/**
 * Each job through BullMQ's own add script (Job.addJob), sent straight on the connection, whose
 * coalesced writes (write-coalescing.ts) send them a few at a time as a pipeline would send them
 * all: an ioredis pipeline copies every script BullMQ defines onto itself when it is made, which
 * cost more than the adds of a small batch. A job whose options BullMQ refuses is not sent and
 * fails alone.
 */
async function addEach(queue: Queue, jobs: readonly Job[]): Promise<AddReply[]> {
  const client = await queue.backend.client;
  const settled = await Promise.allSettled(
    jobs.map((job) => {
      try {
        return job.addJob(client);
      } catch (err) {
        return Promise.reject(err);
      }
    }),
  );
  // A lost connection concerns every job of the batch, and the guard must see it to tell that
  // their outcome is unknown.
  const lost = settled.find((r) => r.status === 'rejected' && isConnectionFailure(r.reason));
  if (lost) throw (lost as PromiseRejectedResult).reason;
  return settled.map((r): AddReply => (r.status === 'fulfilled' ? { id: String(r.value) } : { err: r.reason }));
}
