// The bp:completed_attempts entries of one lane that a worker's connection wrote twice. A worker
// sends again, once its connection is back, the commands whose replies a dropped connection lost;
// an XADD Redis had applied is then in the stream twice, with the same flush token. One writer's
// entries reach the stream in the order of their numbers (one connection sends them, and resends
// what it had in flight before anything newer), so an entry numbered no higher than the last one
// counted from its writer is such a copy.
import { LANE_EVENT, type DecodedLaneEvent } from '@bullpen/core';

/** Writers remembered per lane; the least recently seen is forgotten first. */
export const MAX_WRITERS = 10_000;

export interface Screened {
  /** The batch, each copy turned into an entry with no attempts. */
  events: DecodedLaneEvent[];
  /** Copies found. */
  resent: number;
  /** The last number counted from each writer once the batch is committed: pass to adopt(). */
  seen: Map<string, number>;
}

export class ResentFlushes {
  /** Writer → the last number counted from it, in order of last use. */
  private readonly last = new Map<string, number>();

  constructor(private readonly maxWriters = MAX_WRITERS) {}

  /**
   * Finds the copies in a batch. Nothing is remembered until adopt(): a batch whose commit fails is
   * screened again as it was the first time.
   */
  screen(events: readonly DecodedLaneEvent[]): Screened {
    const seen = new Map<string, number>();
    let resent = 0;
    const screened = events.map((ev) => {
      if (ev.event !== LANE_EVENT.completedAttempts || !ev.flush) return ev;
      const { writer, seq } = ev.flush;
      const last = seen.get(writer) ?? this.last.get(writer);
      if (last !== undefined && seq <= last) {
        resent += 1;
        return { ...ev, attempts: [] };
      }
      seen.set(writer, seq);
      return ev;
    });
    return { events: screened, resent, seen };
  }

  /** The batch screened into `seen` is committed: its entries are counted. */
  adopt(seen: ReadonlyMap<string, number>): void {
    for (const [writer, seq] of seen) {
      this.last.delete(writer);
      this.last.set(writer, seq);
    }
    for (const writer of this.last.keys()) {
      if (this.last.size <= this.maxWriters) break;
      this.last.delete(writer);
    }
  }
}
