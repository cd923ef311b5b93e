// One lane served by this process: a BullMQ Worker on the lane's queue, with the lane's
// concurrency and lock duration, its share of the lane's retry budget, its lease records and, for
// an isolated lane, its handler threads; it runs each job through an AttemptRunner and turns
// BullMQ's worker events into the runtime's lifecycle events.
import {
  LANE_EVENT,
  RepeatLimiter,
  RetryBudget,
  createRedis,
  isOutOfMemoryReply,
  lanePrefix,
  laneRetention,
  publishLaneEvent,
  unwrapJobData,
  type BullpenLaneEvent,
  type ErrorClass,
  type IntakePauseReason,
  type RedisConnectionWatch,
  type RedisClient,
} from '@bullpen/core';
import type { Job } from 'bullmq';
import { AttemptRunner } from './attempt';
import type { AttemptDeps } from './attempt-deps';
import type { AttemptEventBuffer } from './attempt-event-buffer';
import type { AttemptRef, DeadReason } from './events';
import { emitFailure } from './failure-events';
import { wakeFetchLoop } from './fetch-loop';
import type { HandlerSlots, LaneSlots } from './handler-slots';
import { ThreadPool, type ThreadPoolStats } from './isolation/thread-pool';
import { HeldJobs } from './held-jobs';
import { LaneBullWorker } from './lane-bull-worker';
import { LeaseRecorder } from './lease-recorder';
import { RedisOomBackoff } from './redis-oom-backoff';
import { reportStall } from './stall-report';

/** A start is recorded as a lease once it has run this long (at most half the lock duration). */
export const LEASE_RECORD_AFTER_MS = 1000;

/** An error BullMQ's worker repeats is logged once, then once per this long with its count. */
export const WORKER_ERROR_LOG_INTERVAL_MS = 30_000;

/**
 * The longest a lane's idle blocking fetch waits before it asks Redis again (BullMQ's drainDelay,
 * 5 s by default). A due retry is announced to the fetch by a marker that BullMQ's own bookkeeping
 * can lose: a fetch may take the marker of a retry just as the attempt's end is recorded, and
 * BullMQ then clears the wake-up time the fetch read from it (it applies the "nothing fetched"
 * reply of moving the job to the delayed set). The lane then sleeps for the whole drainDelay, so a
 * 300 ms backoff became 5 s about once in every few dozen retries, more often while the lanes share
 * the process's slots (a lane waiting for work keeps a blocking fetch open beside its running job).
 * One second bounds that, for one blocking call per idle lane per second.
 */
export const LANE_DRAIN_DELAY_SECONDS = 1;

/** The service name of the worker's spans, its handler threads' included. */
export const WORKER_SERVICE_NAME = 'bullpen-worker';

export type LaneWorkerDeps = Omit<AttemptDeps, 'budget' | 'pool' | 'jobConnection' | 'intakeStopped' | 'onStart' | 'onEnd' | 'publish' | 'slots'> & {
  /** The process-wide handler cap, shared by all lanes. */
  slots: HandlerSlots;
  completedEvents: AttemptEventBuffer;
  /** Logs connection errors and access refusals for the whole process; this lane's connection is watched. */
  redisWatch?: RedisConnectionWatch;
};

export class LaneWorker {
  private worker: LaneBullWorker | undefined;
  private readonly runner: AttemptRunner;
  private readonly budget: RetryBudget;
  private readonly leases: LeaseRecorder;
  private readonly pool: ThreadPool | undefined;
  /** The lane's share of the process's handler slots, which sets how many jobs it may lease. */
  private readonly slots: LaneSlots;
  private readonly writes = new Set<Promise<unknown>>();
  /** The jobs this lane runs now, with BullMQ's attemptsStarted of their current start. */
  private readonly starts = new Map<string, number>();
  /** What holds the lane's intake now: it resumes only once nothing does. */
  private readonly intakeHolds = new Set<IntakePauseReason>();
  private readonly oomBackoff: RedisOomBackoff;
  private readonly errorLog: RepeatLimiter;
  private connection: RedisClient | undefined;
  private draining = false;
  /** The drain's pause(), which settles once the active jobs have ended. */
  private pausing: Promise<void> | undefined;
  /** The drain ended before BullMQ's pause(): the lane held no job and Redis was out of reach. */
  private drainedUnreachable = false;
  /** The jobs the lane holds until BullMQ has stored their outcome. */
  private readonly held: HeldJobs;
  /** Settles once the jobs a forced close left running have ended and been cleaned up after. */
  private abandonedEnded: Promise<void> = Promise.resolve();

  constructor(private readonly deps: LaneWorkerDeps) {
    const { config, lane, policy, redis, logger } = deps;
    this.budget = new RetryBudget(redis, config.prefix, lane, policy.retryBudget);
    this.leases = new LeaseRecorder({
      redis,
      prefix: config.prefix,
      lane,
      workerId: config.workerId,
      recordAfterMs: Math.min(LEASE_RECORD_AFTER_MS, Math.floor(policy.lockDurationMs / 2)),
      logger,
    });
    this.pool = policy.isolated
      ? new ThreadPool({
          lane,
          size: policy.concurrency,
          data: { handlersDir: config.handlersDir, httpAllowedHosts: config.httpHandlerAllowedHosts, logLevel: config.logLevel, tracing: config.tracing, serviceName: WORKER_SERVICE_NAME },
          logger,
          startTimeoutMs: policy.threadStartTimeoutMs,
        })
      : undefined;
    this.held = new HeldJobs(() => this.slots.held());
    this.slots = deps.slots.lane({ concurrency: policy.concurrency, onLeaseLimit: (limit, raised) => this.setLeaseLimit(limit, raised) });
    this.runner = new AttemptRunner({
      ...deps,
      slots: this.slots,
      budget: this.budget,
      pool: this.pool,
      jobConnection: () => this.connection,
      intakeStopped: () => this.intakeHolds.size > 0 || this.draining,
      onStart: (jobId, attemptsStarted) => {
        this.starts.set(jobId, attemptsStarted);
        this.leases.track(jobId, attemptsStarted);
      },
      onEnd: (jobId) => {
        this.starts.delete(jobId);
        this.leases.untrack(jobId);
      },
      publish: (ev) => this.publish(ev),
    });
    this.oomBackoff = new RedisOomBackoff({
      lane,
      logger,
      pause: () => this.pauseIntake('redis_oom'),
      resume: () => this.resumeIntake('redis_oom'),
    });
    this.errorLog = new RepeatLimiter({
      intervalMs: WORKER_ERROR_LOG_INTERVAL_MS,
      onRepeats: (error, repeats) =>
        logger.error('lane worker error', { error, repeats, interval_ms: WORKER_ERROR_LOG_INTERVAL_MS }),
    });
  }

  get lane(): string {
    return this.deps.lane;
  }

  /** Handlers of this lane holding a slot now. */
  get activeHandlers(): number {
    return this.runner.activeHandlers;
  }

  /** Leased jobs of this lane waiting for a handler slot. */
  get waitingForSlot(): number {
    return this.slots.waiting;
  }

  /** How many jobs the lane may hold now: its share of the process's handler slots. */
  get leaseLimit(): number {
    return this.slots.leaseLimit;
  }

  /** What holds the lane's intake now; empty while it takes jobs. */
  get intakePausedBy(): readonly IntakePauseReason[] {
    return [...this.intakeHolds];
  }

  threadStats(): ThreadPoolStats | undefined {
    return this.pool?.stats();
  }

  /** Creates the BullMQ Worker, which starts fetching jobs, and waits until it is connected. */
  async start(): Promise<void> {
    const { config, lane, policy, logger } = this.deps;
    this.budget.start();
    this.leases.start();
    // The lane's threads start now, while the worker connects, so that they are likely ready when
    // the first jobs come (a job that comes sooner waits for one, outside its timeout).
    this.pool?.start();
    // BullMQ fetches on a duplicate of this connection and never closes one it was given.
    const connection = createRedis(config.redis, 'worker', `bullpen:worker:${lane}`);
    this.connection = connection;
    this.deps.redisWatch?.watch(connection);
    const worker = new LaneBullWorker(
      lane,
      // Two parameters: BullMQ makes a per-job AbortController (for its cancelJob) only for a
      // processor that declares a third. The runner cancels its attempts itself (cancel()), with
      // the one signal it gives the handler.
      (job: Job, token: string | undefined) => {
        const jobId = job.id ?? '';
        this.slots.begun(jobId);
        this.held.begun(jobId);
        return this.runner.process(job, token).catch((err: unknown) => {
          this.held.processorThrew(jobId, err);
          throw err;
        });
      },
      {
        connection,
        prefix: lanePrefix(config.prefix, lane),
        // The lane's share of the process's handler slots, changed as the lanes' demand changes.
        concurrency: this.slots.leaseLimit,
        lockDuration: policy.lockDurationMs,
        // A stalled job is found within two intervals of its lock expiring (BullMQ's defaults are
        // both 30 s); a short test lock gets a correspondingly quick check.
        stalledInterval: policy.lockDurationMs,
        maxStalledCount: policy.maxStalls,
        drainDelay: LANE_DRAIN_DELAY_SECONDS,
        ...laneRetention(policy),
        // BullMQ stores it as the job's processedBy.
        name: config.workerId,
        settings: { backoffStrategy: (_attemptsMade, _type, err) => this.runner.delayFor(err) },
        // Redis stored the completion; only its answer was lost with the connection.
        onLostCompletionReply: ({ jobId, attemptsStarted }) =>
          logger.info('the reply to a job\'s completion was lost with the connection; Redis had stored it', { lane, job_id: jobId, attempts_started: attemptsStarted }),
      },
    );
    this.worker = worker;
    worker.on('error', (err) => this.onError(err));
    // Redis took a write of the lane again: a job was leased, or one finished.
    worker.on('active', (job) => {
      this.oomBackoff.accepted();
      this.slots.leased(job.id ?? '');
    });
    worker.on('drained', () => this.slots.drained());
    worker.on('completed', (job) => {
      this.oomBackoff.accepted();
      this.slots.begun(job.id ?? '');
      this.held.letGo(job.id ?? '');
      this.onCompleted(job);
    });
    worker.on('failed', (job, err) => {
      this.onFailed(job, err);
      if (job) this.held.letGo(job.id ?? '');
    });
    worker.on('lockRenewalFailed', (jobIds) => this.onLockLost(jobIds));
    worker.on('stalled', (jobId) => this.track(reportStall(this.deps, jobId, this.starts.get(jobId))));
    await worker.waitUntilReady();
  }

  /** Aborts the signal of a job this worker is running; false when it runs no such job. */
  cancel(jobId: string, reason: string): boolean {
    return this.runner.cancel(jobId, reason);
  }

  /** Stops taking new jobs for `reason`; active ones continue. */
  async pauseIntake(reason: IntakePauseReason): Promise<void> {
    this.intakeHolds.add(reason);
    this.slots.setFetching(false);
    // BullMQ keeps running active jobs but fetches no more; a fetch already blocked in Redis may
    // still deliver one job, which the runner hands back.
    await this.worker?.pause(true);
  }

  /** Lifts the hold of `reason`; the lane takes jobs again once no other reason holds it. */
  async resumeIntake(reason: IntakePauseReason): Promise<void> {
    this.intakeHolds.delete(reason);
    if (this.intakeHolds.size > 0 || this.draining) return;
    this.slots.setFetching(true);
    await this.worker?.resume();
  }

  /**
   * Stops taking jobs and resolves once the active ones have finished and been recorded, or at
   * once when the lane holds no job while Redis is out of reach: BullMQ's pause() then waits for
   * Redis to come back (its blocking fetch retries until it does), for nothing that needs it.
   */
  async drain(): Promise<void> {
    this.draining = true;
    this.slots.setFetching(false);
    this.oomBackoff.close();
    const worker = this.worker;
    if (!worker) return;
    // pause() waits for active jobs only when it is the call that pauses: a worker the memory
    // guard paused is resumed first (anything it fetches meanwhile is handed back).
    if (worker.isPaused()) await worker.resume();
    this.pausing = worker.pause();
    const connection = this.connection;
    if (!connection) return this.pausing;
    this.drainedUnreachable = await this.held.noneWhileUnreachable(connection, this.pausing);
    if (this.drainedUnreachable) {
      this.deps.logger.info('lane holds no job and Redis is out of reach: it stops without waiting for Redis', { lane: this.deps.lane });
    }
  }

  /**
   * The shutdown's grace period ended: aborts the signals of the lane's handlers still running (an
   * isolated lane's are stopped when close() terminates their threads). Their jobs go back to the
   * wait list, at the latest in close().
   */
  stopRunning(): void {
    this.runner.stopForShutdown();
  }

  /** Closes the worker, its threads and its connections; `force` does not wait for active jobs. */
  async close(force: boolean): Promise<void> {
    const worker = this.worker;
    this.oomBackoff.close();
    // A lane drained with nothing held and Redis out of reach has nothing to wait for: BullMQ's
    // close() would wait for its fetch, which waits for Redis.
    force ||= this.drainedUnreachable;
    await worker?.close(force);
    if (force && this.pausing) {
      // A drain cut short by the grace period leaves BullMQ's pause() waiting for the jobs still
      // running; when they end, it reconnects the blocking connection although the worker has
      // been closed since. Disconnect it again then, so that nothing of the worker outlives it.
      const disconnect = async () => {
        await worker?.disconnect().catch(() => undefined);
      };
      this.abandonedEnded = this.pausing.then(disconnect, disconnect);
    }
    await this.leases.close();
    await this.pool?.close();
    await this.budget.close();
    await Promise.allSettled([...this.writes]);
    // The jobs whose handlers the shutdown stopped go back to wait on this lane's connection, last
    // before it closes: an in-process handler that ignored its signal runs on until the process
    // exits, and may overlap with the job's next run from the moment its job is back.
    await this.runner.handBackStopped();
    this.connection?.disconnect();
    this.errorLog.close();
  }

  /** Drops the worker's connections at once: for a close() that Redis cannot let finish. */
  async disconnect(): Promise<void> {
    await this.worker?.disconnect().catch(() => undefined);
    this.connection?.disconnect();
  }

  /** After close(): resolves once the jobs it left running have ended (see Runtime.settled). */
  settled(): Promise<void> {
    return this.abandonedEnded;
  }

  /** BullMQ reads its concurrency each time it decides whether to fetch; a raised one is acted on
   * at once rather than when one of the lane's running jobs ends. */
  private setLeaseLimit(limit: number, raised: boolean): void {
    const worker = this.worker;
    if (!worker) return;
    worker.concurrency = limit;
    if (raised) wakeFetchLoop(worker);
  }

  /**
   * BullMQ's worker reports what goes wrong in its own loop here. Without a pause it asks Redis
   * again at once, so a refusal for lack of memory pauses the lane's intake; anything else is
   * BullMQ's to retry, and only logged, each repeated message once per interval.
   */
  private onError(err: Error): void {
    const { lane, logger } = this.deps;
    if (isOutOfMemoryReply(err)) {
      this.deps.emit('redis:oom-refused', { lane, error: err.message });
      this.oomBackoff.refused(err);
      return;
    }
    if (this.deps.redisWatch?.handled(err)) return;
    if (this.errorLog.admit(err.message)) logger.error('lane worker error', { error: err.message });
  }

  /** BullMQ could not renew the locks of these jobs: another worker may hold them now. */
  private onLockLost(jobIds: readonly string[]): void {
    for (const jobId of jobIds) {
      this.held.letGo(jobId);
      const stopped = this.runner.leaseLost(jobId);
      // Its handler may have ended already, its outcome not yet stored (Redis was out of reach).
      const msg = stopped
        ? 'lost the lock of a running job: its handler is stopped, and another worker may run the job'
        : 'lost the lock of a job whose handler had ended here: another worker may run the job again';
      this.deps.logger.warn(msg, {
        lane: this.deps.lane,
        job_id: jobId,
        handler_stopped: stopped,
        lock_duration_ms: this.deps.policy.lockDurationMs,
      });
    }
  }

  private onCompleted(job: Job): void {
    const done = this.runner.completionOf(job);
    if (!done) return;
    const { ref, timings, waitMs } = done;
    if (this.deps.listens('job:completed')) this.deps.emit('job:completed', { ...ref, ...timings, waitMs });
    this.deps.completedEvents.push(this.deps.lane, {
      jobId: ref.jobId,
      name: ref.jobName,
      tenant: ref.tenant ?? '',
      attempt: ref.attempt,
      runMs: timings.durationMs,
      waitMs,
    });
  }

  private onFailed(job: Job | undefined, err: Error): void {
    const failed = this.runner.failureOf(err);
    if (!job) return;
    // BullMQ fails a job it leased without running it (a deferred failure).
    this.slots.begun(job.id ?? '');
    if (!failed) {
      // BullMQ failed the job outside our processor: a deferred failure, set when the job stalled
      // more often than allowed, or a failure to store the job's outcome. Only one that moved the
      // job to the failed set made a dead letter; BullMQ retries the others.
      if (!job.finishedOn) {
        if (this.errorLog.admit(err.message)) this.deps.logger.warn('a job failed outside its attempt; BullMQ retries it', { lane: this.deps.lane, job_id: job.id, error: err.message });
        return;
      }
      const stalled = Boolean(job.deferredFailure);
      this.dead(job, {
        withoutAttempt: true,
        ref: {
          lane: this.deps.lane,
          jobId: job.id ?? '',
          jobName: job.name,
          tenant: unwrapJobData(job.data).meta?.tenant,
          attempt: job.attemptsMade,
          maxAttempts: Math.max(1, job.opts.attempts ?? 1),
          workerId: this.deps.config.workerId,
        },
        errorClass: stalled ? 'stalled' : 'unknown',
        reason: stalled ? 'stalled' : 'permanent_error',
        message: err.message,
      });
      return;
    }
    emitFailure(this.deps.emit, failed);
    const { plan, ref, message } = failed;
    if (plan.kind === 'dead') {
      this.dead(job, { ref, errorClass: plan.errorClass, reason: plan.reason, message: plan.failedReason ?? message });
    }
  }

  /** The job ended without success: it stays in the failed set (the dead letters). */
  private dead(
    job: Job,
    d: { ref: AttemptRef; errorClass: ErrorClass; reason: DeadReason; message: string; withoutAttempt?: boolean },
  ): void {
    const { ref, errorClass, reason } = d;
    this.deps.emit('job:dead', { ...ref, errorClass, reason, message: d.message, attemptsMade: job.attemptsMade });
    this.publish({
      event: LANE_EVENT.dead,
      jobId: ref.jobId,
      name: ref.jobName,
      errorClass,
      reason,
      attemptsMade: job.attemptsMade,
      ...(d.withoutAttempt ? { withoutAttempt: true } : {}),
      ...(ref.tenant !== undefined ? { tenant: ref.tenant } : {}),
      attempt: ref.attempt,
      worker: ref.workerId,
    });
  }

  private publish(ev: BullpenLaneEvent): void {
    const { config, lane, redis, logger } = this.deps;
    this.track(
      publishLaneEvent(redis, config.prefix, lane, ev, config.eventsMaxLen).catch((err: unknown) =>
        logger.warn('could not publish a lane event', { event: ev.event, error: (err as Error).message }),
      ),
    );
  }

  private track(write: Promise<unknown>): void {
    this.writes.add(write);
    const done = () => {
      this.writes.delete(write);
    };
    write.then(done, done);
  }
}
