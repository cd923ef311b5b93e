// The jobs one lane holds from their lease until BullMQ has stored their outcome, so that a drain
// can tell when nothing it holds needs Redis any more: BullMQ's own pause() waits for its fetch,
// which retries until Redis is back.
import type { RedisClient } from '@bullpen/core';

/** Errors a processor throws after moving its job itself (BullMQ's DelayedError, WaitingError,
 * WaitingChildrenError): BullMQ stores no outcome for them and emits no event. */
const MOVED_BY_PROCESSOR: ReadonlySet<string | undefined> = new Set(['DelayedError', 'WaitingError', 'WaitingChildrenError']);

/** The connection events after which it may have become ready or stopped being so. */
const CONNECTION_STATE_EVENTS = ['ready', 'close', 'end', 'reconnecting', 'error'] as const;

export class HeldJobs {
  /** Jobs whose attempt has begun here and whose outcome BullMQ has not stored yet. */
  private readonly inHand = new Set<string>();
  /** Called whenever the lane lets go of a job (while a drain watches). */
  private onChanged: (() => void) | undefined;

  /** `leasedNotBegun` counts the jobs BullMQ leased for the lane whose attempt has not begun. */
  constructor(private readonly leasedNotBegun: () => number) {}

  /** Jobs the lane holds: leased and not begun, or begun and their outcome not yet stored. */
  get count(): number {
    return this.leasedNotBegun() + this.inHand.size;
  }

  /** The processor got the job: held until its outcome is stored (see letGo and processorThrew). */
  begun(jobId: string): void {
    this.inHand.add(jobId);
  }

  /** The processor threw `err`: when it moved the job itself, BullMQ stores nothing more. */
  processorThrew(jobId: string, err: unknown): void {
    if (MOVED_BY_PROCESSOR.has((err as Error | undefined)?.name)) this.letGo(jobId);
  }

  /** BullMQ stored the job's outcome, failed it without an attempt, or the lane lost its lock. */
  letGo(jobId: string): void {
    this.inHand.delete(jobId);
    this.onChanged?.();
  }

  /**
   * Resolves with true once the lane holds no job while `connection` is not ready (Redis out of
   * reach), unless `until` settles first (then false). Stops watching either way.
   */
  async noneWhileUnreachable(connection: RedisClient, until: Promise<unknown>): Promise<boolean> {
    let check: () => void = () => undefined;
    const idle = new Promise<boolean>((resolve) => {
      check = () => {
        if (this.count === 0 && connection.status !== 'ready') resolve(true);
      };
    });
    this.onChanged = check;
    for (const event of CONNECTION_STATE_EVENTS) connection.on(event, check);
    try {
      check();
      return await Promise.race([until.then(() => false), idle]);
    } finally {
      this.onChanged = undefined;
      for (const event of CONNECTION_STATE_EVENTS) connection.off(event, check);
    }
  }
}
