// Adds jobs to lanes: admission (one round trip that reserves room), the BullMQ add (one round
// trip, deduplicating idempotency keys atomically in BullMQ's script), then the reservation is
// released without waiting. A replayed idempotency key returns the original job. Single jobs
// submitted in the same turn of the event loop share those round trips (submit-batcher.ts).
import { randomUUID } from 'node:crypto';
import { Job, type JobsOptions, type Queue } from 'bullmq';
import type { RedisClient } from '@bullpen/core';
import { SpanKind, SpanStatusCode, context, trace, type Context, type Link, type Span } from '@opentelemetry/api';
import {
  EvictionPolicyWatch,
  LANE_EVENT,
  evictingPolicyMessage,
  injectTraceContext,
  isOutOfMemoryReply,
  laneJobOptions,
  publishLaneEvent,
  releaseAdmission,
  reserveAdmission,
  tracer,
  type BullpenConfig,
  type Logger,
  type MetricSet,
} from '@bullpen/core';
import type { LaneContext } from './auth';
import type { LaneRegistry } from './lane-registry';
import { JobsInFlight } from './jobs-in-flight';
import { ProblemError, outcomeUnknownProblem, redisFullProblem } from './problem';
import { RedisOutcomeUnknownError, type RedisGuard } from './redis-guard';
import { RedisMemoryWatch } from './redis-memory-watch';
import { ReplicaWait } from './replica-wait';
import { jobSubmissionSchema, parseWith, type JobSubmission } from './schemas';
import { checkSubmission, deduplicationId, prepareJob, type PreparedJob } from './submission';
import { BatchedAddError, SubmitBatcher } from './submit-batcher';
import { jobCreatedView, type BulkItemResult, type BulkResult, type JobCreated, type JobStateView } from './views';

/** What a client is told to wait after a 429; lanes drain at worker speed, unknown here. */
export const QUEUE_FULL_RETRY_AFTER_SECONDS = 1;

export interface SubmitOutcome {
  replayed: boolean;
  job: JobCreated;
}

export interface BulkOutcome {
  result: BulkResult;
  /** Set when some item was refused because the lane is full. */
  retryAfterSeconds?: number;
}

export interface ProducerDeps {
  config: BullpenConfig;
  redis: RedisClient;
  guard: RedisGuard;
  lanes: LaneRegistry;
  /** The API's metrics; admission rejections are counted here. */
  metrics?: MetricSet;
  logger?: Logger;
  /** Room for jobs on their way to Redis; default from config (API_MAX_INFLIGHT_JOBS, API_INFLIGHT_WAIT_MS). */
  inFlight?: JobsInFlight;
  /** How full Redis is; default from config (API_REDIS_MEMORY_LIMIT). */
  memory?: RedisMemoryWatch;
}

/**
 * Adds jobs of one lane in one MULTI/EXEC, each through BullMQ's own add script (Job.addJob on a
 * transaction, as BullMQ's flows do), so that Redis applies the batch whole or not at all. All
 * the keys are the lane's. Resolves with each job's id: the pre-assigned one, or the original
 * job's when an idempotency key was already taken.
 */
async function addInOneTransaction(queue: Queue, items: readonly { prepared: PreparedJob; defaults: JobsOptions }[]): Promise<string[]> {
  const client = await queue.backend.client;
  const multi = client.multi();
  // Each add is queued on the transaction synchronously; its promise settles with the queueing.
  const queued = items.map(({ prepared, defaults }) =>
    new Job(queue, prepared.name, prepared.data, { ...defaults, ...prepared.opts }, prepared.jobId).addJob(multi),
  );
  const replies = await multi.exec();
  await Promise.all(queued);
  if (!replies) throw new Error('the bulk transaction was discarded');
  const failed = replies.find(([err]: [Error | null, unknown]) => err)?.[0];
  if (failed) {
    // MULTI does not roll back: say so when some adds were applied and others were not.
    if (replies.some(([err]: [Error | null, unknown]) => !err)) {
      throw new Error(`the bulk transaction was applied in part: ${failed.message}`, { cause: failed });
    }
    throw failed;
  }
  return replies.map(([, id]: [Error | null, unknown]) => String(id));
}

/**
 * A PRODUCER span for one job, following OpenTelemetry's messaging conventions; its context
 * travels with the job (envelope `trace`) so that every attempt joins the same trace.
 */
function startProducerSpan(lane: string, prepared: PreparedJob, links?: Link[], parent: Context = context.active()): Span {
  const span = tracer().startSpan(
    `send ${lane}`,
    {
      kind: SpanKind.PRODUCER,
      attributes: {
        'messaging.system': 'bullmq',
        'messaging.destination.name': lane,
        'messaging.operation.type': 'send',
        'messaging.operation.name': 'send',
        'messaging.message.id': prepared.jobId,
        'bullpen.job.name': prepared.name,
      },
      ...(links ? { links, root: true } : {}),
    },
    parent,
  );
  // An unsampled span travels too (traceparent flags 00): the attempts of the job follow the
  // decision instead of each starting a trace of its own. Tracing off makes no valid context.
  if (trace.isSpanContextValid(span.spanContext())) {
    const carrier = injectTraceContext(trace.setSpan(parent, span));
    if (Object.keys(carrier).length > 0) prepared.data.bullpen.trace = carrier;
  }
  return span;
}

function endSpan(span: Span, err?: unknown): void {
  if (err !== undefined) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error)?.message });
    span.setAttribute('error.type', (err as { code?: string })?.code ?? 'error');
  }
  span.end();
}

interface ValidItem {
  index: number;
  prepared: PreparedJob;
}

/** A valid bulk item whose idempotency key an earlier valid item of the same request carries. */
interface RepeatedItem {
  index: number;
  /** The index of that earlier item, whose outcome this one shares. */
  of: number;
}

/** What an item repeating an earlier item's idempotency key is answered: that item's job, or its refusal. */
function repeatOf(index: number, first: BulkItemResult): BulkItemResult {
  if (first.id !== undefined) return { index, status: 'replayed', id: first.id };
  if (first.status === 'rejected') return { index, status: 'rejected', code: first.code ?? 'queue_full' };
  throw new Error(`bulk item ${index} repeats item ${first.index}, which has neither a job nor a refusal`);
}

/**
 * What a redis_full refusal adds when Redis evicts keys: a Redis shared with a cache under an LRU
 * policy sits near maxmemory for good, and the refusals go on until its policy is fixed.
 */
function evictionNote(policy: string | undefined): string {
  return policy === undefined ? '' : `. ${evictingPolicyMessage(policy)}`;
}

function queueFull(lane: string, backlog: number, maxQueueSize: number): ProblemError {
  return new ProblemError('queue_full', `Lane ${lane} holds ${backlog} of at most ${maxQueueSize} jobs; retry later`, {
    headers: { 'Retry-After': String(QUEUE_FULL_RETRY_AFTER_SECONDS) },
  });
}

export class JobProducer {
  private readonly batcher: SubmitBatcher;
  private readonly inFlight: JobsInFlight;
  private readonly memory: RedisMemoryWatch;
  private readonly replicas: ReplicaWait;

  constructor(private readonly deps: ProducerDeps) {
    const { config, redis } = deps;
    this.replicas = new ReplicaWait(redis, config);
    this.batcher = new SubmitBatcher({ ...deps, replicas: this.replicas });
    this.inFlight = deps.inFlight ?? new JobsInFlight(config.apiMaxInflightJobs, config.apiInflightWaitMs);
    this.memory =
      deps.memory ?? new RedisMemoryWatch(redis, config.prefix, config.apiRedisMemoryLimit, new EvictionPolicyWatch(deps.logger));
  }

  /**
   * Admits and adds one job. The admission and the add go to Redis with the other submissions of
   * the same turn of the event loop (submit-batcher.ts): each is still refused, added or failed on
   * its own.
   */
  /** @param bytes the request's body length, counted against Redis's memory until it is read again */
  async submit({ lane, policy }: LaneContext, tenant: string, input: JobSubmission, bytes = 0): Promise<SubmitOutcome> {
    const { guard, lanes } = this.deps;
    const prepared = prepareJob(input, { tenant, policy, jobId: randomUUID(), nowMs: Date.now() });
    const queue = lanes.queue(lane);
    // The request's context, for the producer span that starts when the batch is sent.
    const parent = context.active();
    let span: Span | undefined;
    let failure: unknown;
    if (this.memory.near(bytes)) await this.memory.fresh();
    this.checkMemory(lane, 1);
    this.memory.sent(bytes);
    // Room among the jobs on their way to Redis first: a refusal here sent nothing.
    if (!this.inFlight.tryEnter(1)) await this.waitForRoom(lane, 1);
    try {
      const outcome = await this.batcher.add(lane, policy, prepared, () => {
        span = startProducerSpan(lane, prepared, undefined, parent);
      });
      if (!outcome.admitted) {
        // A full lane still answers a repeated idempotency key with its job.
        const dedupId = prepared.opts.deduplication?.id;
        const existing = dedupId ? await guard.run(() => queue.getDeduplicationJobId(dedupId)) : null;
        if (existing) return { replayed: true, job: await this.describe(queue, lane, existing, input.name) };
        this.recordRejections(lane, 1);
        throw queueFull(lane, outcome.backlog, policy.maxQueueSize);
      }
      if (outcome.id !== prepared.jobId) {
        span?.setAttribute('messaging.message.id', outcome.id);
        span?.setAttribute('bullpen.idempotent_replay', true);
        return { replayed: true, job: await this.describe(queue, lane, outcome.id, input.name) };
      }
      return { replayed: false, job: jobCreatedView(outcome.job, lane, prepared.initialState) };
    } catch (err) {
      if (!(err instanceof BatchedAddError)) {
        failure = err;
        throw err;
      }
      failure = err.cause;
      if (err.step === 'add' && err.cause instanceof RedisOutcomeUnknownError) {
        throw outcomeUnknownProblem(lane, [err.jobId ?? prepared.jobId], err.cause);
      }
      if (isOutOfMemoryReply(err.cause)) throw this.refusedForMemory(lane, 1);
      throw err.cause;
    } finally {
      this.inFlight.leave(1);
      if (span) endSpan(span, failure);
    }
  }

  /**
   * Refuses new jobs while Redis is past the share of its memory the API may fill
   * (redis-memory-watch.ts), before anything is sent; counted as redis_full. Near that share the
   * caller first waits for a fresh reading (memory.fresh()).
   */
  private checkMemory(lane: string, jobs: number): void {
    const past = this.memory.check(lane);
    if (!past) return;
    this.deps.metrics?.counter('bullpen_api_admission_rejected_total').inc({ lane, reason: 'redis_full' }, jobs);
    throw redisFullProblem(
      `Redis is at ${Math.floor(past.ratio * 100)}% of its maxmemory, past the ${Math.round(past.limit * 100)}% ` +
        'the API fills (API_REDIS_MEMORY_LIMIT); nothing was enqueued. The rest is kept for the jobs already queued; retry later' +
        evictionNote(past.evictingPolicy),
    );
  }

  /** Redis refused a write for memory: it refuses before changing anything, so nothing was enqueued. */
  private refusedForMemory(lane: string, jobs: number): ProblemError {
    this.deps.metrics?.counter('bullpen_api_admission_rejected_total').inc({ lane, reason: 'redis_full' }, jobs);
    return redisFullProblem(
      'Redis is out of memory (maxmemory) and refused the jobs; nothing was enqueued. Retry later' +
        evictionNote(this.memory.evictingPolicyOf(lane)),
    );
  }

  /** Waits for room among the jobs on their way to Redis; a refusal is counted as api_overloaded. */
  private async waitForRoom(lane: string, jobs: number): Promise<void> {
    try {
      await this.inFlight.enter(jobs);
    } catch (err) {
      this.deps.metrics?.counter('bullpen_api_admission_rejected_total').inc({ lane, reason: 'api_overloaded' }, jobs);
      throw err;
    }
  }

  /**
   * Counts refused submissions in this process's metrics and tells the exporter through the
   * lane's event stream. Best effort: a lost event must not turn a 429 into a 503.
   */
  private recordRejections(lane: string, count: number): void {
    const { config, redis, metrics, logger } = this.deps;
    metrics?.counter('bullpen_api_admission_rejected_total').inc({ lane, reason: 'queue_full' }, count);
    publishLaneEvent(redis, config.prefix, lane, { event: LANE_EVENT.rejected, count, reason: 'queue_full' }, config.eventsMaxLen).catch(
      (err: unknown) => logger?.debug('could not publish the rejection event', { lane, error: (err as Error).message }),
    );
  }

  /**
   * Validates each item alone, waits for room for the valid ones among the jobs on their way to
   * Redis (jobs-in-flight.ts), admits as many as the lane has room for (in request order), and
   * adds them in one MULTI/EXEC, which Redis applies whole or not at all: if Redis fails, no item
   * was taken and the whole call is a 503. An item repeating the idempotency key of an earlier
   * item can add no job of its own (same tenant, same lane: the same deduplication id): it takes
   * no room and shares that item's outcome, the same job replayed or the same refusal.
   */
  /** @param bytes the request's body length, counted against Redis's memory until it is read again */
  async submitBulk({ lane, policy }: LaneContext, tenant: string, items: readonly unknown[], bytes = 0): Promise<BulkOutcome> {
    const { config, redis, guard, lanes } = this.deps;
    const results: BulkItemResult[] = new Array(items.length);
    const valid: ValidItem[] = [];
    const repeated: RepeatedItem[] = [];
    const firstWithKey = new Map<string, number>();
    const nowMs = Date.now();
    items.forEach((item, index) => {
      const base = `body.jobs[${index}]`;
      const parsed = parseWith(jobSubmissionSchema, item, base);
      if (!parsed.ok) {
        results[index] = { index, status: 'invalid', code: 'validation_failed', errors: parsed.errors };
        return;
      }
      const rejection = checkSubmission(parsed.value, policy, base);
      if (rejection) {
        results[index] = { index, status: 'invalid', code: rejection.code, errors: rejection.errors };
        return;
      }
      const key = parsed.value.idempotencyKey;
      if (key !== undefined) {
        const of = firstWithKey.get(key);
        if (of !== undefined) {
          repeated.push({ index, of });
          return;
        }
        firstWithKey.set(key, index);
      }
      const prepared = prepareJob(parsed.value, { tenant, policy, jobId: randomUUID(), nowMs });
      valid.push({ index, prepared });
    });

    let refused: ValidItem[] = [];
    if (valid.length > 0) {
      const ids = valid.map((item) => item.prepared.jobId);
      if (this.memory.near(bytes)) await this.memory.fresh();
      this.checkMemory(lane, valid.length);
      this.memory.sent(bytes);
      // Room among the jobs on their way to Redis first: a refusal here sent nothing.
      await this.waitForRoom(lane, valid.length);
      try {
        // The admitted items go in one MULTI (addAtomically), so they are reserved as one group.
        const decision = await guard.run(() =>
          reserveAdmission(redis, { prefix: config.prefix, lane, maxQueueSize: policy.maxQueueSize, ids, atomic: true }),
        );
        const admitted = valid.slice(0, decision.granted);
        refused = valid.slice(decision.granted);
        try {
          if (admitted.length > 0) await this.addAtomically({ lane, policy }, admitted, results);
        } finally {
          releaseAdmission(redis, decision.reservation);
        }
      } catch (err) {
        // Refused at the transaction's queueing (EXECABORT) or in the admission call: nothing was added.
        if (isOutOfMemoryReply(err)) throw this.refusedForMemory(lane, valid.length);
        throw err;
      } finally {
        this.inFlight.leave(valid.length);
      }
    }
    if (refused.length > 0) await this.settleRefused(lane, refused, results);
    for (const { index, of } of repeated) results[index] = repeatOf(index, results[of] as BulkItemResult);
    const rejectedCount = results.filter((r) => r.status === 'rejected').length;
    if (rejectedCount > 0) this.recordRejections(lane, rejectedCount);

    const count = (status: BulkItemResult['status']) => results.filter((r) => r.status === status).length;
    const result: BulkResult = {
      lane,
      created: count('created'),
      replayed: count('replayed'),
      rejected: count('rejected'),
      invalid: count('invalid'),
      results,
    };
    return result.rejected > 0 ? { result, retryAfterSeconds: QUEUE_FULL_RETRY_AFTER_SECONDS } : { result };
  }

  private async addAtomically(
    { lane, policy }: LaneContext,
    admitted: readonly ValidItem[],
    results: BulkItemResult[],
  ): Promise<void> {
    const { guard, lanes } = this.deps;
    const queue = lanes.queue(lane);
    // A Job built by hand does not get the Queue's defaultJobOptions: the lane's defaults go in here.
    const defaults = laneJobOptions(policy);
    // One producer span per job, each the root of its job's trace and linked to the request.
    const request = trace.getActiveSpan()?.spanContext();
    const links = request ? [{ context: request }] : [];
    const spans = admitted.map(({ prepared }) => startProducerSpan(lane, prepared, links));
    let ids: string[] | undefined;
    try {
      ids = await guard.run(() => addInOneTransaction(queue, admitted.map(({ prepared }) => ({ prepared, defaults }))));
      await this.replicas.confirm(lane);
    } catch (err) {
      spans.forEach((span) => endSpan(span, err));
      // Once Redis answered the adds, the jobs are the ids it answered (a replayed idempotency
      // key's is its original job's), though the replicas did not confirm them.
      if (err instanceof RedisOutcomeUnknownError) throw outcomeUnknownProblem(lane, ids ?? admitted.map(({ prepared }) => prepared.jobId), err);
      throw err;
    }
    spans.forEach((span) => endSpan(span));
    admitted.forEach(({ index, prepared }, i) => {
      const id = ids[i];
      if (id === undefined) throw new Error(`the bulk transaction returned no job id for item ${index}`);
      results[index] = { index, status: id === prepared.jobId ? 'created' : 'replayed', id };
    });
  }

  /** Items without room: a known idempotency key is answered as a replay, the rest as queue_full. */
  private async settleRefused(lane: string, refused: readonly ValidItem[], results: BulkItemResult[]): Promise<void> {
    const { guard, lanes } = this.deps;
    const queue = lanes.queue(lane);
    const existing = await guard.run(() =>
      Promise.all(
        refused.map(({ prepared }) => {
          const dedupId = prepared.opts.deduplication?.id;
          return dedupId ? queue.getDeduplicationJobId(dedupId) : Promise.resolve(null);
        }),
      ),
    );
    refused.forEach(({ index }, i) => {
      const id = existing[i];
      results[index] = id ? { index, status: 'replayed', id } : { index, status: 'rejected', code: 'queue_full' };
    });
  }

  /** The original job of a replay. If retention already removed it, what is known of it. */
  private async describe(queue: Queue, lane: string, id: string, name: string): Promise<JobCreated> {
    const [job, state] = await this.deps.guard.run(() => Promise.all([Job.fromId(queue, id), queue.getJobState(id)]));
    if (!job) return { id, lane, name, state: 'unknown', createdAt: null };
    return jobCreatedView(job, lane, state as JobStateView);
  }
}
