// Writes down which worker holds each start that has run for a while, so that a worker reclaiming
// the job after a crash can name the one that crashed. BullMQ's own `processedBy` cannot tell: the
// next lease overwrites it. Jobs that finish sooner, nearly all of them, cost nothing: one timer
// per lane sweeps the active jobs, and one script call records all that are due.
import { JOB_FIELD, formatLeaseRecord, jobKeys, scriptCommand, type Logger } from '@bullpen/core';
import type { RedisClient } from '@bullpen/core';

const SCRIPT = 'bullpenRecordLeases';

type LeaseRedis = RedisClient & { [SCRIPT](numKeys: number, ...args: string[]): Promise<number> };

export interface LeaseRecorderOptions {
  redis: RedisClient;
  prefix: string;
  lane: string;
  workerId: string;
  /** A start is recorded once it has run this long; the sweep runs twice as often. */
  recordAfterMs: number;
  logger: Logger;
}

export class LeaseRecorder {
  private readonly pending = new Map<string, { ats: number; since: number }>();
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly options: LeaseRecorderOptions) {}

  start(): void {
    scriptCommand<LeaseRedis>(this.options.redis, SCRIPT, 'record-leases');
    this.timer = setInterval(() => this.sweep(), Math.max(10, Math.floor(this.options.recordAfterMs / 2)));
    this.timer.unref();
  }

  /** A start began now: `ats` is BullMQ's attemptsStarted for it. */
  track(jobId: string, ats: number): void {
    // On the monotonic clock: a start timed on the wall clock went unrecorded for as long as the
    // clock stepped back, and a crash meanwhile left its reclaim unable to name this worker.
    this.pending.set(jobId, { ats, since: performance.now() });
  }

  /** The start ended (or was recorded). */
  untrack(jobId: string): void {
    this.pending.delete(jobId);
  }

  private sweep(): void {
    const due: Array<[string, number]> = [];
    const cutoff = performance.now() - this.options.recordAfterMs;
    for (const [jobId, lease] of this.pending) {
      if (lease.since <= cutoff) due.push([jobId, lease.ats]);
    }
    if (due.length === 0) return;
    for (const [jobId] of due) this.pending.delete(jobId);
    const { redis, prefix, lane, workerId } = this.options;
    const keys = due.map(([jobId]) => jobKeys(prefix, lane, jobId).job);
    const records = due.map(([, ats]) => formatLeaseRecord({ ats, worker: workerId }));
    this.writing = (redis as LeaseRedis)[SCRIPT](keys.length, ...keys, JOB_FIELD.lease, ...records).then(
      () => undefined,
      (err: unknown) => {
        this.options.logger.warn('could not record job leases', { error: (err as Error).message, jobs: keys.length });
      },
    );
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.pending.clear();
    await this.writing;
  }
}
