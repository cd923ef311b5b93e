// Which leases of an attempt are repeats: a retry that used no attempt (rate-limited on a lane with
// rateLimitedConsumesAttempt: false) leases the job again under the same attempt number. A
// worker's lease_created line says so itself (BullMQ's attempts_started), the exporter's cannot
// (the lane streams do not carry it) and has null there; but the retry_scheduled line before it
// names the attempt that follows (next_attempt), so a lease of that attempt is known to repeat.

/** Retries awaiting their lease held at most; the oldest are forgotten past this. */
const DEFAULT_MAX_PENDING = 100_000;

export class RepeatLeases {
  /** lane, job and attempt of retries that used no attempt and whose lease was not read yet, each
   * with the number of the retry that put it there. */
  private readonly pending = new Map<string, number>();
  /** The last maxPending such retries, as a ring, so that the oldest is forgotten in O(1). */
  private readonly order: Array<{ key: string; seq: number }> = [];
  private seq = 0;

  constructor(private readonly maxPending = DEFAULT_MAX_PENDING) {}

  /** Retries remembered now; bounded by maxPending. */
  get size(): number {
    return this.pending.size;
  }

  /** A retry_scheduled line: remembers it when the next attempt has the same number. */
  retryScheduled(lane: string, jobId: string, attempt: unknown, nextAttempt: unknown): void {
    if (typeof nextAttempt !== 'number' || nextAttempt !== attempt) return;
    const key = keyOf(lane, jobId, nextAttempt);
    const seq = (this.seq += 1);
    this.pending.set(key, seq);
    const slot = seq % this.maxPending;
    const oldest = this.order[slot];
    if (oldest && this.pending.get(oldest.key) === oldest.seq) this.pending.delete(oldest.key);
    this.order[slot] = { key, seq };
  }

  /** A lease_created line: whether it repeats an attempt that was leased before. */
  leased(lane: string, jobId: string, attempt: unknown): boolean {
    if (typeof attempt !== 'number') return false;
    return this.pending.delete(keyOf(lane, jobId, attempt));
  }
}

function keyOf(lane: string, jobId: string, attempt: number): string {
  return `${lane}\u0000${jobId}\u0000${attempt}`;
}
