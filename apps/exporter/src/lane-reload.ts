// Brings a lane's cursor and served totals back in line with its saved state once a commit found
// that state elsewhere than the reader left it. What Redis holds tells the causes apart:
//  - another exporter committed after this one: its totals include every one served here
//    (commits only add), so its state is adopted;
//  - this exporter committed it: a commit whose reply a dropped connection lost was sent again,
//    and found the position it had moved itself. Its state is adopted too, as no conflict;
//  - Redis lost this exporter's last commits (it restarted from an older RDB snapshot, or from an
//    append-only file fsynced every second after a crash, or a replica that lagged was promoted):
//    some saved total is below the one served. The served totals are kept and written back, as
//    a total that steps down reads to Prometheus as a counter reset, and rate() and increase()
//    would count the lane's whole total again;
//  - the state is gone (Redis came back empty or was flushed, or from before the exporter first
//    counted the lane): the lane is counted again from 0, a clean reset that Prometheus handles,
//    and the caller is told (onGone), to say that Redis lost bullpen's data.
import { type Logger } from '@bullpen/core';
import { EVENT_METRICS } from './event-counting';
import type { Cursor } from './lane-cursor';
import type { LaneStateStore, SavedLaneState } from './lane-state-store';
import type { LaneShortfall, SeriesStore } from './stored-series';
import { compareStreamIds, START_POSITION } from './stream-loss';

export interface LaneReloadDeps {
  state: LaneStateStore;
  store: SeriesStore;
  logger: Logger;
  /** Called after the lane's totals were replaced, to pre-initialise its zero series. */
  onLaneLoaded?: (lane: string) => void;
  /** Called when another exporter had committed the lane first. */
  onConflict?: (lane: string) => void;
  /** Called when the lane's saved state is gone from Redis (it lost its data), after the lane starts over. */
  onGone?: (lane: string) => void;
}

export type ReloadOutcome = 'adopted' | 'restored' | 'gone';

export class LaneReload {
  constructor(private readonly deps: LaneReloadDeps) {}

  async reload(cursor: Cursor): Promise<ReloadOutcome> {
    for (;;) {
      const saved = await this.deps.state.load(cursor.lane);
      if (saved.position === undefined) {
        this.startOver(cursor);
        return 'gone';
      }
      const shortfall = this.deps.store.shortfall(cursor.lane, saved.series);
      // Integer totals decide: every batch adds to one (its entries, in events_processed_total),
      // while a histogram's sum may legitimately step down (a negative wait between clocks).
      if (shortfall.ints.size === 0) {
        this.adopt(cursor, saved);
        return 'adopted';
      }
      if (await this.restore(cursor, saved, shortfall)) return 'restored';
      // The saved position moved meanwhile: look again at what is saved now.
    }
  }

  private adopt(cursor: Cursor, saved: SavedLaneState): void {
    const details = { lane: cursor.lane, position: cursor.position, savedPosition: saved.position };
    if (saved.writer === this.deps.state.writer) {
      this.deps.logger.info("the reply to this exporter's commit was lost with its connection; the commit had been stored", details);
    } else {
      this.deps.onConflict?.(cursor.lane);
      this.deps.logger.warn('another exporter committed this lane first; its state is adopted', details);
    }
    Object.assign(cursor, { position: saved.position ?? START_POSITION, saved: saved.position ?? '', read: saved.read });
    this.deps.store.loadLane(cursor.lane, saved.series);
    this.deps.onLaneLoaded?.(cursor.lane);
  }

  private startOver(cursor: Cursor): void {
    this.deps.logger.warn("Redis lost the exporter's saved state of this lane (it came back empty or was flushed): counting the lane stream again from 0", {
      lane: cursor.lane,
      position: cursor.position,
      entriesCounted: cursor.read,
      completedCounted: this.deps.store.counterValue(cursor.lane, EVENT_METRICS.completed.name, { lane: cursor.lane }),
    });
    Object.assign(cursor, { position: START_POSITION, saved: '', read: 0 });
    this.deps.store.loadLane(cursor.lane, {});
    this.deps.onLaneLoaded?.(cursor.lane);
    this.deps.onGone?.(cursor.lane);
  }

  /**
   * Keeps the served totals, writing them back, and resumes after the entries Redis kept that the
   * lost commits had counted: those between the saved position and the reader's are counted in
   * the served totals already (Redis's stream is a prefix of the one read), and what Redis
   * appends from here on gets later ids. (An entry appended with an id at or before the reader's
   * position, by a Redis whose clock is behind the lost one's, would be taken as counted.)
   */
  private async restore(cursor: Cursor, saved: SavedLaneState, shortfall: LaneShortfall): Promise<boolean> {
    const { state, store, logger } = this.deps;
    const savedPosition = saved.position as string;
    let position = savedPosition;
    let read = saved.read;
    if (compareStreamIds(savedPosition, cursor.position) < 0) {
      const span = await state.span(cursor.key, savedPosition, cursor.position);
      if (span.last !== undefined) position = span.last;
      const info = span.info;
      const first = info?.firstEntryId;
      const trimmedPastSaved = info !== undefined && (first === undefined || compareStreamIds(first, savedPosition) > 0);
      // Trimmed past the saved position, `read` there no longer says how many entries precede
      // the kept ones: the stream's own counters do (all that it lacks came before its first).
      read = trimmedPastSaved && info.entriesAdded !== undefined ? info.entriesAdded - info.length + span.count : saved.read + span.count;
    }
    const ok = await state.restore({ lane: cursor.lane, expected: savedPosition, position, read, shortfall });
    if (!ok) return false;
    logger.warn("Redis lost the exporter's last commits (restored from an older snapshot or a failover): its totals are kept", {
      lane: cursor.lane,
      position: cursor.position,
      savedPosition,
      resumeAt: position,
      entriesInLostCommits: cursor.read - saved.read,
      completedKept: shortfall.total(EVENT_METRICS.completed),
      seriesRaised: shortfall.ints.size + shortfall.sums.size,
    });
    Object.assign(cursor, { position, saved: position, read });
    store.loadLaneRaised(cursor.lane, saved.series, shortfall);
    this.deps.onLaneLoaded?.(cursor.lane);
    return true;
  }
}
