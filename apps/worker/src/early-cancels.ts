// Cancel messages that came before the attempt they are for. BullMQ makes a job active in Redis a
// little before the lane's processor runs it, and the API, seeing the job active, publishes the
// cancel then: the message can be read in between, when no attempt of the job is registered yet. A
// first start reads nothing of the job's history (the cancel mark included), so the message is kept
// here for that attempt to claim as it registers. Kept in memory only, bounded in number and time:
// every worker hears every cancel, and most are for jobs other workers run.

export interface EarlyCancelsOptions {
  /** How long a message waits for its attempt: the lane's lockDurationMs. A job BullMQ made active
   * and did not hand to the processor within its lock is reclaimed as a later start, which reads
   * the job's cancel mark instead. */
  ttlMs: number;
  /** The most messages kept; the oldest goes first. Default 10,000. */
  maxEntries?: number;
  /** Default Date.now. */
  now?: () => number;
}

export const EARLY_CANCELS_MAX_ENTRIES = 10_000;

export class EarlyCancels {
  /** By job id, in the order the messages came (Map keeps insertion order), so oldest first. */
  private readonly byJob = new Map<string, { reason: string; at: number; expiresAt: number }>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(options: EarlyCancelsOptions) {
    this.ttlMs = options.ttlMs;
    this.maxEntries = options.maxEntries ?? EARLY_CANCELS_MAX_ENTRIES;
    this.now = options.now ?? Date.now;
  }

  /** Messages kept now. */
  get size(): number {
    return this.byJob.size;
  }

  /** Keeps the cancellation of `jobId`, whose attempt has not started here (and may never). */
  note(jobId: string, reason: string): void {
    const now = this.now();
    this.byJob.delete(jobId);
    this.byJob.set(jobId, { reason, at: now, expiresAt: now + this.ttlMs });
    // Expired ones are dropped as new ones come; nothing else adds to the map, so it needs no timer.
    for (const [id, entry] of this.byJob) {
      if (entry.expiresAt > now && this.byJob.size <= this.maxEntries) break;
      this.byJob.delete(id);
    }
  }

  /**
   * The reason of a cancellation of `jobId` that came before its attempt, once; undefined when none
   * did (or it expired). `activeSince` is when the job became active for this attempt (BullMQ's
   * processedOn, stamped by this process's clock as it leased the job): a message older than that
   * was for an earlier run of the job (one cancelled and then redriven within the ttl), not this one.
   */
  take(jobId: string, activeSince: number): string | undefined {
    if (this.byJob.size === 0) return undefined;
    const entry = this.byJob.get(jobId);
    if (!entry) return undefined;
    this.byJob.delete(jobId);
    return entry.expiresAt > this.now() && entry.at >= activeSince ? entry.reason : undefined;
  }
}
