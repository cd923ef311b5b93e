// The exporter's events_lost lines: lane stream entries trimmed before it read them, which gave no
// lines, so the report's figures miss their jobs. A loss counts in a window its times overlap (it
// happened after from_ts, null when unknown, and at or before ts). A loss written again (its batch
// counted again after a failed commit) has the same from_stream_id and entries_before, and maybe a
// larger count as the trim went on: the larger count stands, not the sum.

export interface LaneLoss {
  lane: string;
  /** Lost stream entries (not jobs: each job makes several) whose times overlap the window. */
  lost: number;
  /** The earliest time they can be from; null when a loss ran from the stream's start. */
  from: string | null;
  /** The latest time they can be from. */
  to: string;
}

interface Loss {
  lost: number;
  fromMs: number | null;
  toMs: number;
}

export class LostEvents {
  /** Per lane, per loss: few (one per outage), so kept whole. */
  private readonly lanes = new Map<string, Map<string, Loss>>();

  /**
   * Takes an events_lost line's fields; returns whether it overlaps the window (a line that does
   * not is outside it like any other). A line without a count of lost entries counts none.
   */
  add(lane: string, tsMs: number, event: Record<string, unknown>, window: { from: number; to: number }): boolean {
    const fromMs = typeof event.from_ts === 'string' ? Date.parse(event.from_ts) : NaN;
    const loss: Loss = { lost: typeof event.lost === 'number' && event.lost > 0 ? event.lost : 0, fromMs: Number.isFinite(fromMs) ? fromMs : null, toMs: tsMs };
    if (loss.toMs < window.from || (loss.fromMs !== null && loss.fromMs >= window.to)) return false;
    let losses = this.lanes.get(lane);
    if (!losses) {
      losses = new Map();
      this.lanes.set(lane, losses);
    }
    const key =
      typeof event.from_stream_id === 'string' && typeof event.entries_before === 'number'
        ? `${event.from_stream_id} ${event.entries_before}`
        : `line ${losses.size}`;
    const before = losses.get(key);
    if (!before || loss.lost > before.lost) losses.set(key, loss);
    return true;
  }

  /** Per lane with any loss, sorted by lane. */
  build(): LaneLoss[] {
    return [...this.lanes.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .flatMap(([lane, losses]) => {
        const all = [...losses.values()];
        const lost = all.reduce((sum, l) => sum + l.lost, 0);
        if (lost === 0) return [];
        const unknownStart = all.some((l) => l.fromMs === null);
        const from = unknownStart ? null : new Date(Math.min(...all.map((l) => l.fromMs ?? 0))).toISOString();
        return [{ lane, lost, from, to: new Date(Math.max(...all.map((l) => l.toMs))).toISOString() }];
      });
  }
}
