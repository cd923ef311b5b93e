// The process-wide handler cap (maxHandlersPerProcess) and its share among the lanes of one worker
// process. A lane's BullMQ Worker may hold only as many jobs as the slots it is given here (its
// lease limit, applied as the Worker's concurrency), so the process leases no more jobs than it
// can start at once and leaves the rest in Redis for other worker processes. The slots are shared
// max-min fairly (slot-share.ts): a lane with a backlog asks for its whole concurrency, a lane whose
// queue was empty at its last fetch asks only for what it runs plus one slot for the job it waits
// for, so a busy lane has the slots an idle one does not use and gets them back when it needs them.
import { shareSlots } from './slot-share';

/** Gives the slot back; calling it more than once has no further effect. */
export type Release = () => void;

export interface LaneSlotsOptions {
  /** The lane's concurrency: it never holds more jobs than this. */
  concurrency: number;
  /** Applies a new lease limit to the lane's BullMQ Worker; `raised` when it grew. */
  onLeaseLimit(limit: number, raised: boolean): void;
}

interface Waiter {
  grant(release: Release): void;
}

/** One lane's view of the process's handler slots. */
export class LaneSlots {
  /** Handlers of this lane holding a slot. */
  running = 0;
  /** Leases of this lane waiting for a slot, first come first served. */
  readonly waiters: Waiter[] = [];
  /** Jobs BullMQ has leased for the lane whose attempt has not begun yet (BullMQ fetches on
   * before it starts the jobs it has), by id. */
  private readonly unstarted = new Set<string>();
  /** How many jobs the lane's BullMQ Worker may hold now. */
  leaseLimit = 1;
  /** Whether the lane's queue had no job for it at its last fetch. */
  idle = false;
  /** Whether the lane takes jobs (false while its intake is paused or it drains). */
  fetching = true;

  constructor(
    private readonly pool: HandlerSlots,
    readonly concurrency: number,
    readonly onLeaseLimit: (limit: number, raised: boolean) => void,
  ) {}

  /** Leased jobs of this lane waiting for a slot. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** A slot at once if the process has one free; undefined otherwise (no promise to make). */
  tryAcquire(): Release | undefined {
    return this.pool.tryAcquire(this);
  }

  /**
   * Resolves with a release function once a slot is held. If `signal` aborts first, the lease
   * leaves the queue and the promise rejects with the signal's reason.
   */
  acquire(signal?: AbortSignal): Promise<Release> {
    return this.pool.acquire(this, signal);
  }

  /**
   * Whether a job whose attempt begins now was leased beyond the lane's share: no slot is free and
   * the lane holds its whole lease limit without it. A limit comes down at once, but a fetch BullMQ
   * opened under the higher one (a blocking fetch waiting for the lane's next job) can still deliver
   * a job after it, once the slots it would have used have gone to another lane.
   */
  leasedBeyondShare(): boolean {
    return !this.pool.hasFreeSlot() && this.held() >= this.leaseLimit;
  }

  /** The lane's BullMQ Worker leased a job: its queue has work. */
  leased(jobId: string): void {
    this.unstarted.add(jobId);
    if (!this.idle) return;
    this.idle = false;
    this.pool.rebalance();
  }

  /** The attempt of a leased job began (it takes a slot or hands the job back), or the job ended
   * without one. */
  begun(jobId: string): void {
    this.unstarted.delete(jobId);
  }

  /** The lane's BullMQ Worker found its queue empty. */
  drained(): void {
    if (this.idle) return;
    this.idle = true;
    this.pool.rebalance();
  }

  /** The lane stops or starts taking jobs. */
  setFetching(fetching: boolean): void {
    if (this.fetching === fetching) return;
    this.fetching = fetching;
    this.pool.rebalance();
  }

  /** What the lane asks for now. */
  demand(): number {
    const held = this.held();
    if (!this.fetching) return held;
    if (this.idle) return Math.min(this.concurrency, held + 1);
    return this.concurrency;
  }

  /** The slots the lane may be using now: its lease limit, or more while it runs leases beyond it. */
  committed(): number {
    const held = this.held();
    return this.fetching ? Math.max(this.leaseLimit, held) : held;
  }

  /** Jobs the lane holds: running, waiting for a slot, or leased and not begun. */
  held(): number {
    return this.running + this.waiters.length + this.unstarted.size;
  }
}

export class HandlerSlots {
  private readonly lanes: LaneSlots[] = [];
  private held = 0;
  private waiters = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
  }

  /** Registers a lane; its first lease limit is its share of the slots, as if it had a backlog. */
  lane(options: LaneSlotsOptions): LaneSlots {
    const lane = new LaneSlots(this, options.concurrency, options.onLeaseLimit);
    this.lanes.push(lane);
    this.rebalance();
    return lane;
  }

  /** Slots held right now. */
  get inUse(): number {
    return this.held;
  }

  /** Leases waiting for a slot. */
  get waiting(): number {
    return this.waiters;
  }

  /** Whether a slot can be taken at once (none held by every handler, no lease waiting). */
  hasFreeSlot(): boolean {
    return this.held < this.capacity && this.waiters === 0;
  }

  tryAcquire(lane: LaneSlots): Release | undefined {
    if (!this.hasFreeSlot()) return undefined;
    this.held += 1;
    lane.running += 1;
    return this.releaser(lane);
  }

  acquire(lane: LaneSlots, signal?: AbortSignal): Promise<Release> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const now = this.tryAcquire(lane);
    if (now) return Promise.resolve(now);
    return new Promise<Release>((resolve, reject) => {
      const onAbort = () => {
        const index = lane.waiters.indexOf(waiter);
        if (index >= 0) {
          lane.waiters.splice(index, 1);
          this.waiters -= 1;
          this.rebalance();
        }
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        grant: (release) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(release);
        },
      };
      lane.waiters.push(waiter);
      this.waiters += 1;
      signal?.addEventListener('abort', onAbort, { once: true });
      this.rebalance();
    });
  }

  /**
   * Sets each lane's lease limit to its fair share. A limit comes down at once (BullMQ then fetches
   * no more for the lane); one goes up only into slots that no lane may be using, so that a lease
   * never has to wait for a slot that another lane's handler still holds.
   */
  rebalance(): void {
    const { lanes } = this;
    // Lanes whose concurrencies fit in the capacity together can never want each other's slots:
    // each keeps its whole concurrency, and no lane's limit moves with its queue emptying and
    // filling (each move up would wake BullMQ's fetch loop for an extra fetch per idle-to-busy turn).
    if (lanes.reduce((sum, lane) => sum + lane.concurrency, 0) <= this.capacity) {
      for (const lane of lanes) this.setLeaseLimit(lane, lane.concurrency);
      return;
    }
    const targets = shareSlots(this.capacity, lanes.map((lane) => lane.demand()));
    // A lane's BullMQ Worker always has room for one job: with fewer slots than lanes, an idle
    // lane's one lease may have to wait for a slot.
    for (let i = 0; i < lanes.length; i++) {
      const lane = lanes[i]!;
      const target = Math.max(1, targets[i]!);
      if (target < lane.leaseLimit) this.setLeaseLimit(lane, target);
    }
    let free = this.capacity;
    for (const lane of lanes) free -= lane.committed();
    if (free <= 0) return;
    // The lanes holding fewest slots are served first.
    const raising = lanes.map((lane, i) => ({ lane, target: targets[i]! })).filter(({ lane, target }) => lane.fetching && target > lane.leaseLimit);
    raising.sort((a, b) => a.lane.leaseLimit - b.lane.leaseLimit);
    for (const { lane, target } of raising) {
      if (free <= 0) break;
      const before = lane.committed();
      this.setLeaseLimit(lane, Math.min(target, before + free));
      free -= lane.committed() - before;
    }
  }

  private setLeaseLimit(lane: LaneSlots, limit: number): void {
    if (limit === lane.leaseLimit) return;
    const raised = limit > lane.leaseLimit;
    lane.leaseLimit = limit;
    lane.onLeaseLimit(limit, raised);
  }

  private releaser(lane: LaneSlots): Release {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      lane.running -= 1;
      const next = this.nextWaitingLane();
      if (next) {
        // The slot passes to a waiting lease without ever being free, so nothing can barge in between.
        const waiter = next.waiters.shift()!;
        this.waiters -= 1;
        next.running += 1;
        waiter.grant(this.releaser(next));
      } else {
        this.held -= 1;
      }
      this.rebalance();
    };
  }

  /** Of the lanes with leases waiting, the one running fewest handlers: no lane waits behind another's backlog. */
  private nextWaitingLane(): LaneSlots | undefined {
    let best: LaneSlots | undefined;
    for (const lane of this.lanes) {
      if (lane.waiters.length > 0 && (!best || lane.running < best.running)) best = lane;
    }
    return best;
  }
}
