// Which of the exporter's lines are copies. The exporter writes a batch's lines before committing
// its position; after a crash between the two (or a failed commit) the batch is read and written
// again, with the same stream_id on each line. Each lane's lines are written in stream order and
// the lines of one entry always in the same order, so a copy is an entry's lines read again: per
// lane it is enough to know which entry is being read, how far into it, and for the last entries
// read how many of their lines were. That is bounded, unlike remembering every line: a replay is
// at most one batch (EXPORTER_BATCH_SIZE entries, 1,000 by default and 100,000 at most) per lane.

/** Entries remembered per lane: the largest EXPORTER_BATCH_SIZE. */
export const DEFAULT_ENTRIES_PER_LANE = 100_000;

interface LaneState {
  /** The entry whose lines are being read, the first of its lines read, and how many of them. */
  entry: string | undefined;
  first: string | undefined;
  position: number;
  /** Lines read of the last entries. */
  read: Map<string, number>;
  /** Those entries in the order first read, as a ring: the oldest is forgotten in O(1) (deleting
   * a Map's first key again and again makes each next deletion walk past the holes left). */
  order: string[];
  /** Where the next entry goes in `order` once it is full. */
  next: number;
}

export class ReplayedLines {
  private readonly lanes = new Map<string, LaneState>();

  constructor(private readonly entriesPerLane = DEFAULT_ENTRIES_PER_LANE) {}

  /** Entries remembered now, over every lane: at most entriesPerLane per lane. */
  get size(): number {
    let n = 0;
    for (const state of this.lanes.values()) n += state.read.size;
    return n;
  }

  /**
   * Call for every exporter line in the order read, `line` naming it within its entry (event, job,
   * attempt). `counted` is false for a line the report skips anyway (outside the window): it only
   * marks where entries begin, and nothing of it is remembered. Returns whether the line is a copy
   * of one read before.
   */
  isCopy(lane: string, streamId: string, line: string, counted: boolean): boolean {
    let state = this.lanes.get(lane);
    if (!state) {
      state = { entry: undefined, first: undefined, position: 0, read: new Map(), order: [], next: 0 };
      this.lanes.set(lane, state);
    }
    // A new entry, or the same one from its start again (a batch of one entry, replayed).
    if (state.entry !== streamId || state.first === line) {
      state.entry = streamId;
      state.first = line;
      state.position = 0;
    }
    if (!counted) return false;
    state.position += 1;
    const before = state.read.get(streamId) ?? 0;
    if (state.position <= before) return true;
    state.read.set(streamId, state.position);
    if (before === 0) this.remember(state, streamId);
    return false;
  }

  private remember(state: LaneState, streamId: string): void {
    if (state.order.length < this.entriesPerLane) {
      state.order.push(streamId);
      return;
    }
    const oldest = state.order[state.next] as string;
    state.read.delete(oldest);
    state.order[state.next] = streamId;
    state.next = (state.next + 1) % this.entriesPerLane;
  }
}
