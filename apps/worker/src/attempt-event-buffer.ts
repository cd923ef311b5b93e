// Completed attempts, batched into `bp:completed_attempts` entries: the success path must stay about
// as cheap as bare BullMQ, so instead of one XADD per job each lane gets one XADD, holding every
// attempt that completed there since the last one, at most every maxDelayMs or maxBatch attempts,
// and on close.
//
// What a crash can lose: the attempts still in the buffer. Counters of completed jobs come from
// BullMQ's own `completed` event, which its scripts write atomically with the job's state, so they
// are exact; what is lost is the duration samples (run and wait histograms) and the completed
// count of bullpen_job_attempts_total for the last ≤ maxDelayMs of work. Failed attempts are never
// buffered: their bp:attempt event is written with their attempt row before BullMQ records the
// outcome.
//
// What a lost reply does: the connection sends again, once it is back, every command whose reply
// it had not read, and an XADD that Redis applied before the connection dropped is then applied
// twice. Each entry carries a flush token (this buffer's writer id and a sequence number) that the
// exporter counts once, so the resend keeps the count exact where dropping the write would lose it.
import { randomBytes } from 'node:crypto';
import { encodeCompletedAttempts, encodeFlushToken, laneEventsKey, LANE_EVENT, type CompletedAttemptRow, type Logger } from '@bullpen/core';
import type { RedisClient } from '@bullpen/core';

export interface AttemptEventBufferOptions {
  redis: RedisClient;
  prefix: string;
  /** config.eventsMaxLen. */
  maxLen: number;
  /** config.workerId: the worker named by every entry. */
  workerId: string;
  logger: Logger;
  /** Flush once this many attempts are waiting; default 200. */
  maxBatch?: number;
  /** Flush at most this long after the first waiting attempt; default 50 ms. */
  maxDelayMs?: number;
}

export class AttemptEventBuffer {
  /** Waiting attempts by lane. */
  private pending = new Map<string, CompletedAttemptRow[]>();
  private waiting = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Set<Promise<void>>();
  private readonly maxBatch: number;
  private readonly maxDelayMs: number;
  private dropped = 0;
  /** Names this buffer's entries: new with each buffer, so a restarted worker's numbers start afresh. */
  private readonly writer = randomBytes(8).toString('hex');
  /** The number of the last entry written; one connection sends them in this order. */
  private seq = 0;

  constructor(private readonly options: AttemptEventBufferOptions) {
    this.maxBatch = options.maxBatch ?? 200;
    this.maxDelayMs = options.maxDelayMs ?? 50;
  }

  /** Completed attempts lost because Redis refused a flush. */
  get droppedTotal(): number {
    return this.dropped;
  }

  push(lane: string, attempt: CompletedAttemptRow): void {
    let rows = this.pending.get(lane);
    if (!rows) {
      rows = [];
      this.pending.set(lane, rows);
    }
    rows.push(attempt);
    this.waiting += 1;
    if (this.waiting >= this.maxBatch) {
      void this.flush();
    } else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.maxDelayMs);
      this.timer.unref();
    }
  }

  /** Writes one entry per lane with waiting attempts, in one pipeline; resolves once every flush
   * so far has settled. */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.waiting > 0) {
      const batch = this.pending;
      const count = this.waiting;
      this.pending = new Map();
      this.waiting = 0;
      const { redis, prefix, maxLen, workerId, logger } = this.options;
      // One XADD per lane, sent together; not one pipeline, which a Redis Cluster refuses when
      // the lanes' streams live on different primaries.
      const writes = [...batch].map(([lane, rows]) =>
        redis
          .xadd(
            laneEventsKey(prefix, lane),
            'MAXLEN',
            '~',
            maxLen,
            '*',
            'event',
            LANE_EVENT.completedAttempts,
            'worker',
            workerId,
            'attempts',
            encodeCompletedAttempts(rows),
            'flush',
            encodeFlushToken({ writer: this.writer, seq: (this.seq += 1) }),
          )
          .then(
            () => 0,
            (err: unknown) => {
              logger.debug('completed-attempt flush failed', { lane, error: (err as Error).message });
              return rows.length;
            },
          ),
      );
      const write: Promise<void> = Promise.all(writes).then((lost) => {
        const failed = lost.reduce((a, b) => a + b, 0);
        if (failed > 0) this.lose(failed, `${failed} of ${count} completed attempts were not written`);
      });
      const tracked = write.finally(() => this.inFlight.delete(tracked));
      this.inFlight.add(tracked);
    }
    return this.inFlight.size === 0 ? Promise.resolve() : Promise.all(this.inFlight).then(() => undefined);
  }

  async close(): Promise<void> {
    await this.flush();
  }

  private lose(count: number, reason: string): void {
    this.dropped += count;
    this.options.logger.warn('completed attempts lost (duration samples only)', { count, reason });
  }
}
