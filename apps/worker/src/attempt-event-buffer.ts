// Completed attempts' `bp:attempt` events, batched: the success path must stay about as cheap as
// bare BullMQ, so instead of one XADD per job the events are written in one pipeline at most every
// maxDelayMs or maxBatch events, and on close.
//
// What a crash can lose: the events still in the buffer. Counters of completed jobs come from
// BullMQ's own `completed` event, which its scripts write atomically with the job's state, so they
// are exact; what is lost is the duration samples (run and wait histograms) and the completed
// count of bullpen_job_attempts_total for the last ≤ maxDelayMs of work. Failed attempts are never
// buffered: their event is written with their attempt row before BullMQ records the outcome.
import { laneEventXaddArgs, LANE_EVENT, type AttemptEvent, type Logger } from '@bullpen/core';
import type { RedisClient } from '@bullpen/core';

export interface AttemptEventBufferOptions {
  redis: RedisClient;
  prefix: string;
  /** config.eventsMaxLen. */
  maxLen: number;
  logger: Logger;
  /** Flush once this many events are waiting; default 200. */
  maxBatch?: number;
  /** Flush at most this long after the first waiting event; default 50 ms. */
  maxDelayMs?: number;
}

export class AttemptEventBuffer {
  private pending: Array<{ lane: string; ev: AttemptEvent }> = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly maxBatch: number;
  private readonly maxDelayMs: number;
  private dropped = 0;

  constructor(private readonly options: AttemptEventBufferOptions) {
    this.maxBatch = options.maxBatch ?? 200;
    this.maxDelayMs = options.maxDelayMs ?? 50;
  }

  /** Events lost because Redis refused a flush. */
  get droppedTotal(): number {
    return this.dropped;
  }

  push(lane: string, attempt: Omit<AttemptEvent, 'event'>): void {
    this.pending.push({ lane, ev: { event: LANE_EVENT.attempt, ...attempt } });
    if (this.pending.length >= this.maxBatch) {
      void this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.maxDelayMs);
      this.timer.unref();
    }
  }

  /** Writes the waiting events in one pipeline; resolves once every flush so far has settled. */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.pending;
    if (batch.length > 0) {
      this.pending = [];
      const { redis, prefix, maxLen, logger } = this.options;
      const pipeline = redis.pipeline();
      for (const { lane, ev } of batch) {
        const [key, ...args] = laneEventXaddArgs(prefix, lane, ev, maxLen);
        pipeline.xadd(key as string, ...(args as [string, ...string[]]));
      }
      const write: Promise<void> = pipeline.exec().then(
        (results) => {
          const failed = (results ?? []).filter(([err]) => err).length;
          if (failed > 0) this.lose(failed, 'some completed-attempt events were refused');
        },
        (err: unknown) => {
          this.lose(batch.length, (err as Error).message);
          logger.debug('completed-attempt event flush failed', { error: (err as Error).message });
        },
      );
      const tracked = write.finally(() => this.inFlight.delete(tracked));
      this.inFlight.add(tracked);
    }
    return Promise.all([...this.inFlight]).then(() => undefined);
  }

  async close(): Promise<void> {
    await this.flush();
  }

  private lose(count: number, reason: string): void {
    this.dropped += count;
    this.options.logger.warn('completed-attempt events lost (duration samples only)', { count, reason });
  }
}
