// The worker runtime: one LaneWorker per served lane, a process-wide handler cap shared by all of
// them, the cluster-wide lane caps (BullMQ global concurrency), cancellation, and the typed
// lifecycle events. The constructor does no I/O; start() and close() are explicit.
import { createLaneQueue, createRedis, type BullpenConfig, type Logger } from '@bullpen/core';
import type { Queue } from 'bullmq';
import type IORedis from 'ioredis';
import { CancellationListener } from './cancellation';
import type { WorkerEventMap } from './events';
import { LaneWorker } from './lane-worker';
import type { RandomSource } from './random';
import type { HandlerRegistry } from './registry';
import { Semaphore } from './semaphore';
import { TypedEmitter } from './typed-emitter';

export interface WorkerRuntimeOptions {
  config: BullpenConfig;
  logger: Logger;
  registry: HandlerRegistry;
  /** Lanes to serve; default config.workerLanes. */
  lanes?: readonly string[];
  /** Random source for backoff jitter; default Math.random. */
  random?: RandomSource;
}

export interface WorkerRuntimeStats {
  /** Handlers holding a slot under the process-wide cap. */
  activeHandlers: number;
  /** Leased jobs waiting for a slot. */
  waitingForSlot: number;
  /** Handlers abandoned because they ignored their aborted signal. */
  ignoredSignalTotal: number;
}

type State = 'new' | 'starting' | 'running' | 'closing' | 'closed';

export class WorkerRuntime extends TypedEmitter<WorkerEventMap> {
  readonly config: BullpenConfig;
  readonly lanes: readonly string[];
  private readonly logger: Logger;
  private readonly registry: HandlerRegistry;
  private readonly random: RandomSource;
  private readonly slots: Semaphore;
  private readonly laneWorkers = new Map<string, LaneWorker>();
  private readonly queues: Queue[] = [];
  private connection: IORedis | undefined;
  private cancellation: CancellationListener | undefined;
  private ignoredSignalTotal = 0;
  private state: State = 'new';
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
    this.slots = new Semaphore(this.config.maxHandlersPerProcess);
  }

  stats(): WorkerRuntimeStats {
    return { activeHandlers: this.slots.inUse, waitingForSlot: this.slots.waiting, ignoredSignalTotal: this.ignoredSignalTotal };
  }

  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error(`WorkerRuntime.start() called twice`);
    this.state = 'starting';
    const { config } = this;
    this.connection = createRedis(config.redisUrl, 'worker', 'bullpen:worker:admin');
    // The cluster-wide cap lives in the queue's metadata in Redis, so it binds every replica.
    for (const lane of this.lanes) {
      const queue = createLaneQueue(config, lane, this.connection);
      this.queues.push(queue);
      const cap = config.lanes[lane]?.globalConcurrency;
      if (cap !== undefined) await queue.setGlobalConcurrency(cap);
      else await queue.removeGlobalConcurrency();
    }
    this.cancellation = new CancellationListener(config, this.logger, ({ lane, jobId }) =>
      this.laneWorkers.get(lane)?.cancel(jobId, 'cancel requested') ?? false,
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
        emit: (event, payload) => this.emit(event, payload),
        countIgnoredSignal: () => ++this.ignoredSignalTotal,
      });
      this.laneWorkers.set(lane, laneWorker);
    }
    await Promise.all([...this.laneWorkers.values()].map((w) => w.start()));
    this.state = 'running';
  }

  /**
   * Stops taking jobs, lets active ones finish for up to graceMs, then closes every connection.
   * Jobs still running when the grace period ends are left to BullMQ's stalled-job recovery:
   * their locks expire and another worker takes them over.
   */
  close(graceMs: number = this.config.shutdownGraceMs): Promise<void> {
    this.closing ??= this.doClose(graceMs);
    return this.closing;
  }

  private async doClose(graceMs: number): Promise<void> {
    this.state = 'closing';
    const workers = [...this.laneWorkers.values()];
    const drained = Promise.all(workers.map((w) => w.drain()));
    const inTime = await settlesWithin(drained, graceMs);
    if (!inTime) {
      this.logger.warn('shutdown grace period ended with handlers still running; their jobs will be reclaimed', {
        graceMs,
        activeHandlers: this.slots.inUse,
      });
    }
    await Promise.all(workers.map((w) => w.close(!inTime)));
    await this.cancellation?.close();
    await Promise.all(this.queues.map((q) => q.close()));
    if (this.connection) {
      try {
        await this.connection.quit();
      } catch {
        this.connection.disconnect();
      }
    }
    this.state = 'closed';
  }
}

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
