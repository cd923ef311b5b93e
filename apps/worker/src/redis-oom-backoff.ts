// What a lane does when Redis refuses its writes because it is at `maxmemory`: BullMQ's fetch loop
// would ask again at once, forever, so the lane stops taking jobs for a while instead, for longer
// after each refusal in a row, and says so in a few log lines rather than one per refusal. Active
// jobs go on; those whose completion Redis refuses come back through the stalled-job check once
// memory is freed.
import type { Logger } from '@bullpen/core';

export interface RedisOomBackoffOptions {
  lane: string;
  logger: Logger;
  /** Stops the lane's intake (active jobs continue). */
  pause(): Promise<void>;
  /** Lets the lane take jobs again, as far as this backoff is concerned. */
  resume(): Promise<void>;
  /** The first pause; default 1000 ms. */
  firstPauseMs?: number;
  /** The longest pause; default 30000 ms. */
  maxPauseMs?: number;
  /** A new run of refusals within this long of the last one's first line is logged as a
   * continuation (warn), not as news (error); default 30000 ms. */
  quietMs?: number;
  /** Clock of the pauses' durations and quiet time, for tests; default performance.now (a wall-clock step does not move it). */
  now?: () => number;
}

/** The pause after `step` earlier pauses in a row: firstMs doubled each time, at most capMs. */
export function oomPauseMs(step: number, firstMs: number, capMs: number): number {
  // 2^step overflows to Infinity for huge steps, and min() then picks the cap, as intended.
  return Math.min(capMs, firstMs * 2 ** step);
}

export class RedisOomBackoff {
  private readonly firstPauseMs: number;
  private readonly maxPauseMs: number;
  private readonly quietMs: number;
  private readonly now: () => number;
  /** Pauses in a row since Redis last accepted a write of the lane. */
  private step = 0;
  /** Refusals since the run began, and since the last line that reported them. */
  private refusals = 0;
  private unreported = 0;
  private runStartedAt = 0;
  /** When the last run was announced at error level; -Infinity before any. */
  private lastAnnouncedAt = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: RedisOomBackoffOptions) {
    this.firstPauseMs = options.firstPauseMs ?? 1000;
    this.maxPauseMs = options.maxPauseMs ?? 30_000;
    this.quietMs = options.quietMs ?? 30_000;
    this.now = options.now ?? (() => performance.now());
  }

  /** True while the lane's intake is paused by this backoff. */
  get pausing(): boolean {
    return this.timer !== undefined;
  }

  /** Redis refused a write of the lane for lack of memory. A refusal during a pause (a job's
   * completion, the stalled check) is counted; otherwise the next, longer, pause begins. */
  refused(err: Error): void {
    this.refusals += 1;
    this.unreported += 1;
    if (this.closed) return;
    if (!this.timer) {
      const pauseMs = oomPauseMs(this.step, this.firstPauseMs, this.maxPauseMs);
      this.report(pauseMs, err);
      this.step += 1;
      this.timer = setTimeout(() => this.endPause(), pauseMs);
    }
    // Also during a pause: should anything have resumed the lane early, it pauses again.
    this.options.pause().catch((e: unknown) => this.options.logger.error('could not pause intake', { error: (e as Error).message }));
  }

  /** Redis accepted a write of the lane (a job was taken or completed): memory has been freed. */
  accepted(): void {
    if (this.step === 0) return;
    const { lane, logger } = this.options;
    logger.info(`Redis accepts writes again: lane ${lane} takes and finishes jobs again`, {
      refusals: this.refusals,
      out_of_memory_ms: this.now() - this.runStartedAt,
    });
    this.step = 0;
    this.refusals = 0;
    this.unreported = 0;
    if (this.timer) this.endPause();
  }

  /** Stops the timer; the lane's close or drain decides about intake from here. */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private endPause(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.closed) return;
    this.options.resume().catch((e: unknown) => this.options.logger.error('could not resume intake', { error: (e as Error).message }));
  }

  /** One line per pause: news at error level, then how it goes on, with the refusals since. */
  private report(pauseMs: number, err: Error): void {
    const { lane, logger } = this.options;
    const now = this.now();
    if (this.step === 0) this.runStartedAt = now;
    if (this.step === 0 && now - this.lastAnnouncedAt >= this.quietMs) {
      this.lastAnnouncedAt = now;
      logger.error(
        `Redis is out of memory (maxmemory): lane ${lane} cannot take or finish jobs until memory is freed; ` +
          `intake paused for ${pauseMs} ms. Free memory in Redis (remove old jobs, raise maxmemory); ` +
          'the worker resumes by itself',
        { pause_ms: pauseMs, error: err.message },
      );
    } else {
      logger.warn(`Redis still out of memory: lane ${lane} intake paused for ${pauseMs} ms`, {
        pause_ms: pauseMs,
        refusals: this.unreported,
        out_of_memory_ms: now - this.runStartedAt,
      });
    }
    this.unreported = 0;
  }
}
