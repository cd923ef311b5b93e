// The worker runtime: one LaneWorker per served lane, a process-wide handler cap shared by all of
// them (which also bounds the jobs they lease), the cluster-wide lane caps (BullMQ global
// concurrency), cancellation, the memory guard, and the typed lifecycle events. The constructor does no I/O; start() and close() are explicit.
import {
  createLaneQueue,
  createRedis,
  EvictionPolicyWatch,
  LifecycleLog,
  RedisConnectionWatch,
  RedisDataLossWatch,
  registerLanes,
  RepeatLimiter,
  type BullpenConfig,
  type IntakePauseReason,
  type Logger,
} from '@bullpen/core';
import type { Queue } from 'bullmq';
import type { RedisClient } from '@bullpen/core';
import { AttemptEventBuffer } from './attempt-event-buffer';
import { CancellationListener } from './cancellation';
import { HandlerSlots } from './handler-slots';
import type { MemoryState, WorkerEventMap } from './events';
import { LaneWorker, WORKER_ERROR_LOG_INTERVAL_MS } from './lane-worker';
import { recordLifecycle } from './lifecycle-log';
import { MemoryGuard, type MemoryUsageSample } from './memory-guard';
import type { RandomSource } from './random';
import type { HandlerRegistry } from './registry';
import { TypedEmitter } from './typed-emitter';

export interface WorkerRuntimeOptions {
  config: BullpenConfig;
  logger: Logger;
  registry: HandlerRegistry;
  /** Lanes to serve; default config.workerLanes. */
  lanes?: readonly string[];
  /** Random source for backoff jitter; default Math.random. */
  random?: RandomSource;
  /** Memory guard overrides, for tests: the memory reader (default process.memoryUsage) and how
   * often it is sampled (default 1000 ms). Limits come from config. */
  memory?: { sample?: () => MemoryUsageSample; intervalMs?: number };
}

export interface WorkerRuntimeStats {
  /** Handlers holding a slot under the process-wide cap. */
  activeHandlers: number;
  /** Leased jobs waiting for a slot (only while the process serves more lanes than it has slots). */
  waitingForSlot: number;
  /** In-process handlers abandoned because they ignored their aborted signal. */
  ignoredSignalTotal: number;
  /** Of those, the ones still running (an abandoned handler cannot be stopped in process). */
  abandonedHandlersRunning: number;
  /** Handler threads of isolated lanes alive now. */
  isolatedThreads: number;
  /** Handler threads terminated because their handler ignored its aborted signal. */
  isolatedThreadsTerminatedTotal: number;
  /** Completed-attempt events lost because Redis refused a flush. */
  attemptEventsDroppedTotal: number;
  /** Per served lane: handlers holding a slot now, leased jobs waiting for one, the lane's
   * concurrency in this process, how many jobs it may hold now (its share of the process's slots),
   * and what holds its intake now (empty while it takes jobs). */
  lanes: Record<
    string,
    { activeHandlers: number; waitingForSlot: number; concurrency: number; leaseLimit: number; intakePausedBy: readonly IntakePauseReason[] }
  >;
  /** Lifecycle event log: failed writes and dropped lines (0 when EVENT_LOG_FILE is unset). */
  eventLogErrorsTotal: number;
  eventLogDroppedLinesTotal: number;
}

const MiB = 1024 * 1024;

export type RuntimeStatus = 'new' | 'starting' | 'running' | 'closing' | 'closed';

export class WorkerRuntime extends TypedEmitter<WorkerEventMap> {
  readonly config: BullpenConfig;
  readonly lanes: readonly string[];
  private readonly logger: Logger;
  private readonly registry: HandlerRegistry;
  private readonly random: RandomSource;
  private readonly slots: HandlerSlots;
  private readonly laneWorkers = new Map<string, LaneWorker>();
  private readonly queues: Queue[] = [];
  private connection: RedisClient | undefined;
  private cancellation: CancellationListener | undefined;
  private completedEvents: AttemptEventBuffer | undefined;
  private lifecycleLog: LifecycleLog | undefined;
  private stopLifecycleLog: (() => void) | undefined;
  private readonly memoryGuard: MemoryGuard;
  /** Why this process's connections cannot reach Redis, or what Redis refuses them, logged. */
  private readonly redisWatch: RedisConnectionWatch;
  /** The lane queues' other errors, each repeated message logged once per interval. */
  private readonly queueErrorLog: RepeatLimiter;
  /** Says in the log when Redis may evict jobs (read each time the admin connection is ready). */
  private readonly policies: EvictionPolicyWatch;
  private stopPolicyWatch: (() => void) | undefined;
  /** Says when Redis comes back without bullpen's data (read each time the admin connection is ready). */
  private readonly dataLoss: RedisDataLossWatch;
  private stopDataLossWatch: (() => void) | undefined;
  private ignoredSignalTotal = 0;
  private abandonedRunning = 0;
  private state: RuntimeStatus = 'new';
  private closing: Promise<void> | undefined;

  constructor(options: WorkerRuntimeOptions) {
    super((event, err) =>
      options.logger.error('a worker event listener threw', { event: String(event), error: (err as Error)?.message ?? String(err) }),
    );
    this.config = options.config;
    this.logger = options.logger;
    this.registry = options.registry;
    this.random = options.random ?? Math.random;
    this.lanes = [...(options.lanes ?? options.config.workerLanes)];
    for (const lane of this.lanes) {
      if (!this.config.lanes[lane]) throw new Error(`unknown lane "${lane}"`);
    }
    this.slots = new HandlerSlots(this.config.maxHandlersPerProcess);
    this.redisWatch = new RedisConnectionWatch({ target: this.config.redis, prefix: this.config.prefix, logger: this.logger });
    this.policies = new EvictionPolicyWatch(this.logger);
    this.dataLoss = new RedisDataLossWatch({
      prefix: this.config.prefix,
      logger: this.logger,
      intervalMs: this.config.redisMarkerCheckIntervalMs,
      onLoss: (loss) => {
        this.emit('redis:data-lost', loss);
        // A flush drops no connection, so no reconnect puts the lanes' caps back: the loss does.
        this.restoreLaneSettings('after Redis lost bullpen\'s data');
      },
    });
    this.queueErrorLog = new RepeatLimiter({
      intervalMs: WORKER_ERROR_LOG_INTERVAL_MS,
      onRepeats: (error, repeats) =>
        this.logger.error('lane queue error', { error, repeats, interval_ms: WORKER_ERROR_LOG_INTERVAL_MS }),
    });
    this.memoryGuard = new MemoryGuard({
      maxRssBytes: this.config.workerMaxRssMb * MiB,
      heapWarnBytes: this.config.workerHeapWarnMb * MiB,
      ...(options.memory?.sample ? { sample: options.memory.sample } : {}),
      ...(options.memory?.intervalMs !== undefined ? { intervalMs: options.memory.intervalMs } : {}),
    });
  }

  stats(): WorkerRuntimeStats {
    let isolatedThreads = 0;
    let isolatedThreadsTerminatedTotal = 0;
    const lanes: WorkerRuntimeStats['lanes'] = {};
    for (const lane of this.lanes) {
      const laneWorker = this.laneWorkers.get(lane);
      lanes[lane] = {
        activeHandlers: laneWorker?.activeHandlers ?? 0,
        waitingForSlot: laneWorker?.waitingForSlot ?? 0,
        concurrency: this.config.lanes[lane]?.concurrency ?? 0,
        leaseLimit: laneWorker?.leaseLimit ?? 0,
        intakePausedBy: laneWorker?.intakePausedBy ?? [],
      };
      const threads = laneWorker?.threadStats();
      isolatedThreads += threads?.alive ?? 0;
      isolatedThreadsTerminatedTotal += threads?.terminatedTotal ?? 0;
    }
    return {
      activeHandlers: this.slots.inUse,
      waitingForSlot: this.slots.waiting,
      ignoredSignalTotal: this.ignoredSignalTotal,
      abandonedHandlersRunning: this.abandonedRunning,
      isolatedThreads,
      isolatedThreadsTerminatedTotal,
      attemptEventsDroppedTotal: this.completedEvents?.droppedTotal ?? 0,
      lanes,
      eventLogErrorsTotal: this.lifecycleLog?.errorsTotal ?? 0,
      eventLogDroppedLinesTotal: this.lifecycleLog?.droppedLinesTotal ?? 0,
    };
  }

  /** new → starting → running → closing → closed. */
  get status(): RuntimeStatus {
    return this.state;
  }

  /** The memory guard's view: whether intake is paused, and the last sample against its limits. */
  get memoryState(): MemoryState {
    const guard = this.memoryGuard;
    return {
      paused: guard.paused,
      rssBytes: guard.lastSample.rss,
      heapUsedBytes: guard.lastSample.heapUsed,
      maxRssBytes: guard.maxRssBytes,
      resumeBelowBytes: guard.resumeBelowBytes,
      heapWarnBytes: guard.heapWarnBytes,
      heapWarning: guard.heapWarning,
    };
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`WorkerRuntime.start() called twice`);
    this.state = 'starting';
    const { config } = this;
    this.startLifecycleLog();
    // Not blocking: bullpen's own writes (attempt rows, lane events, retry budget, leases) share it.
    this.connection = createRedis(config.redis, 'worker', 'bullpen:worker:admin');
    this.redisWatch.watch(this.connection);
    this.stopPolicyWatch = this.policies.watchConnection(this.connection);
    this.stopDataLossWatch = this.dataLoss.watchConnection(this.connection);
    // A Redis that restarted without its data has lost the caps (and the lane registry): put them
    // back on every reconnect, or each replica would run its lane's full concurrency unnoticed.
    // (A flush, which no reconnect follows, is the marker's watch's to find: see above.)
    let connectedOnce = false;
    this.connection.on('ready', () => {
      if (!connectedOnce) {
        connectedOnce = true;
        return;
      }
      this.restoreLaneSettings('after reconnecting');
    });
    this.completedEvents = new AttemptEventBuffer({
      redis: this.connection,
      prefix: config.prefix,
      maxLen: config.eventsMaxLen,
      workerId: config.workerId,
      logger: this.logger,
    });
    // The cluster-wide cap lives in the queue's metadata in Redis, so it binds every replica.
    for (const lane of this.lanes) {
      const queue = createLaneQueue(config, lane, this.connection);
      // BullMQ passes its connection's errors on from each queue (the watch logs those); unheard, it
      // prints them raw to stderr.
      queue.on('error', (err) => {
        if (!this.redisWatch.handled(err) && this.queueErrorLog.admit(err.message)) this.logger.error('lane queue error', { error: err.message });
      });
      this.queues.push(queue);
    }
    await this.applyLaneSettings();
    this.cancellation = new CancellationListener(
      config,
      this.logger,
      ({ lane, jobId }) => this.laneWorkers.get(lane)?.cancel(jobId, 'cancel requested') ?? false,
      (client) => this.redisWatch.watch(client),
    );
    await this.cancellation.start();
    for (const lane of this.lanes) {
      const policy = config.lanes[lane];
      if (!policy) continue;
      const laneWorker = new LaneWorker({
        config,
        lane,
        policy,
        registry: this.registry,
        slots: this.slots,
        logger: this.logger.child({ lane }),
        random: this.random,
        redis: this.connection,
        completedEvents: this.completedEvents,
        emit: (event, payload) => this.emit(event, payload),
        listens: (event) => this.listenerCount(event) > 0,
        abandon: (stillRunning) => this.abandon(stillRunning),
        ignoredSignalTotal: () => this.ignoredSignalTotal,
        redisWatch: this.redisWatch,
      });
      this.laneWorkers.set(lane, laneWorker);
    }
    await Promise.all([...this.laneWorkers.values()].map((w) => w.start()));
    this.startMemoryGuard();
    this.state = 'running';
  }

  /**
   * What the lanes file says lives in Redis: each lane's cluster-wide cap, kept in its queue's
   * metadata so that it binds every replica, and the lanes' registration, which keeps them known
   * to the exporter even after a lanes file drops one with jobs still in it.
   */
  private async applyLaneSettings(): Promise<void> {
    const { config } = this;
    for (const queue of this.queues) {
      const cap = config.lanes[queue.name]?.globalConcurrency;
      if (cap !== undefined) await queue.setGlobalConcurrency(cap);
      else await queue.removeGlobalConcurrency();
    }
    await registerLanes(this.connection as RedisClient, config.prefix, this.lanes, this.logger);
  }

  /** applyLaneSettings again; a failure is logged (the next reconnect or loss tries again). */
  private restoreLaneSettings(when: string): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.applyLaneSettings().catch((err: unknown) =>
      this.logger.error(`could not restore the lanes' global concurrency ${when}`, { error: (err as Error).message }),
    );
  }

  /** The lifecycle event log, when EVENT_LOG_FILE is set: written from this runtime's events. */
  private startLifecycleLog(): void {
    const { eventLogFile: file, eventLogMaxBytes: maxBytes, eventLogMaxFiles: maxFiles, eventLogMaxBufferedLines: maxBufferedLines } = this.config;
    if (!file) return;
    this.lifecycleLog = new LifecycleLog({
      file,
      maxBytes,
      maxFiles,
      maxBufferedLines,
      logger: this.logger,
      onWriteFailed: (failure) => this.emit('event-log:write-failed', { file, ...failure }),
      onLinesDropped: (drop) => this.emit('event-log:lines-dropped', { file, ...drop }),
    });
    this.lifecycleLog.start();
    this.stopLifecycleLog = recordLifecycle(this, this.lifecycleLog);
  }

  private abandon(stillRunning: Promise<unknown>): number {
    this.ignoredSignalTotal += 1;
    this.abandonedRunning += 1;
    const settled = () => {
      this.abandonedRunning -= 1;
    };
    stillRunning.then(settled, settled);
    return this.ignoredSignalTotal;
  }

  /** Over the RSS limit every lane stops taking jobs (active ones continue); below 90% of it they
   * take jobs again. */
  private startMemoryGuard(): void {
    const guard = this.memoryGuard;
    const workers = () => [...this.laneWorkers.values()];
    guard.on('memory:over-limit', () => {
      const state = this.memoryState;
      this.logger.warn('memory over the limit: intake paused on all lanes; active jobs continue', {
        rssMb: Math.round(state.rssBytes / MiB),
        maxRssMb: this.config.workerMaxRssMb,
      });
      void Promise.all(workers().map((w) => w.pauseIntake('memory_guard'))).then(
        () => this.emit('memory:paused', this.memoryState),
        (err: unknown) => this.logger.error('could not pause intake', { error: (err as Error).message }),
      );
    });
    guard.on('memory:recovered', () => {
      if (this.state === 'closing' || this.state === 'closed') return;
      // Lanes that something else holds (Redis out of memory) stay paused until it lets go too.
      this.logger.info('memory back under 90% of the limit: the memory guard lets intake resume', {
        rssMb: Math.round(guard.lastSample.rss / MiB),
      });
      void Promise.all(workers().map((w) => w.resumeIntake('memory_guard'))).then(
        () => this.emit('memory:resumed', this.memoryState),
        (err: unknown) => this.logger.error('could not resume intake', { error: (err as Error).message }),
      );
    });
    guard.on('memory:heap-warning', (sample) => {
      this.logger.warn('heap used above the warning threshold', {
        heapUsedMb: Math.round(sample.heapUsed / MiB),
        heapWarnMb: this.config.workerHeapWarnMb,
      });
      this.emit('memory:heap-warning', this.memoryState);
    });
    guard.start();
  }

  /**
   * Stops taking jobs, lets active ones finish for up to graceMs, then closes every connection.
   * Jobs still running when the grace period ends go back to the wait list, using no attempt and
   * counting no stall: in process, their handlers' signals abort with a WorkerStoppingError, and a
   * job whose handler ignores it is handed back last before the connections close (the handler runs
   * on until the process exits); in an isolated lane their threads are terminated. With Redis out
   * of reach they cannot be moved, and are left to BullMQ's stalled-job recovery: their locks
   * expire and another worker takes them over. A connection found down is first made to reconnect
   * at once and waited for (shutdown-hand-back.ts HAND_BACK_REDIS_WAIT_MS), within TEARDOWN_BOUND_MS.
   */
  close(graceMs: number = this.config.shutdownGraceMs): Promise<void> {
    this.closing ??= this.doClose(graceMs);
    return this.closing;
  }

  /**
   * After close(): resolves once the handlers it left running past the grace period have ended
   * and what their end reopened (BullMQ reconnects a paused worker's blocking connection then) is
   * closed again. A process exits without waiting for this; code that embeds the runtime may not.
   */
  async settled(): Promise<void> {
    await this.closing;
    await Promise.all([...this.laneWorkers.values()].map((w) => w.settled()));
  }

  private async doClose(graceMs: number): Promise<void> {
    this.state = 'closing';
    this.memoryGuard.close();
    const workers = [...this.laneWorkers.values()];
    const drained = Promise.all(workers.map((w) => w.drain()));
    const inTime = await settlesWithin(drained, graceMs);
    if (!inTime && this.slots.inUse > 0) {
      this.logger.warn('shutdown grace period ended with handlers still running; they are stopped and their jobs go back to the wait list', {
        graceMs,
        activeHandlers: this.slots.inUse,
      });
    } else if (!inTime) {
      // No job was running: BullMQ's pause was waiting on Redis (unreachable while stopping).
      this.logger.warn('shutdown grace period ended before the lanes stopped taking jobs; no handler was running', { graceMs });
    }
    // Handlers still running are told at once (their signals abort); their jobs go back to the
    // wait list as each stops, or at the latest as its lane closes.
    if (!inTime) for (const worker of workers) worker.stopRunning();
    const teardown = this.closeAll(workers, !inTime);
    // Closing waits for Redis to take the last writes and QUITs; with Redis unreachable or refusing
    // the credentials (a worker that never got started, say) that never comes: drop the rest.
    if (!(await settlesWithin(teardown, TEARDOWN_BOUND_MS))) {
      this.logger.warn('Redis did not take the worker\'s last writes in time; closing its connections without them', {
        boundMs: TEARDOWN_BOUND_MS,
      });
      for (const worker of workers) void worker.disconnect();
      for (const queue of this.queues) void queue.disconnect().catch(() => undefined);
      void this.cancellation?.close();
      this.connection?.disconnect();
    }
    this.stopLifecycleLog?.();
    this.stopPolicyWatch?.();
    this.stopDataLossWatch?.();
    await this.lifecycleLog?.close();
    this.queueErrorLog.close();
    this.redisWatch.close();
    this.state = 'closed';
  }

  /** Closes the lanes, the buffered completions, the cancel listener, the queues and the connection. */
  private async closeAll(workers: readonly LaneWorker[], force: boolean): Promise<void> {
    await Promise.all(workers.map((w) => w.close(force)));
    await this.completedEvents?.close();
    await this.cancellation?.close();
    await Promise.all(this.queues.map((q) => q.close()));
    if (this.connection) {
      try {
        await this.connection.quit();
      } catch {
        this.connection.disconnect();
      }
    }
  }
}

/** How long closing the connections may take after the lanes have stopped (or the grace period ended). */
export const TEARDOWN_BOUND_MS = 5000;

/** Whether `promise` settles within ms; a rejection counts as settled (and is swallowed). */
async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
