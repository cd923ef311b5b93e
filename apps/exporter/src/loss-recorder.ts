// Acts on what stream-loss.ts finds when a lane's stream is compared with the reader's cursor:
// counts the entries lost, in the caller's batch when it has one, else in a commit of its own,
// and stamps the lane's time of the last loss with the same commit. A loss found at start (after
// an outage longer than the stream holds) is committed before the first scrape, so the counter
// never shows it rising; the time is what alerts on it, whichever exporter serves it. With an event
// log, a loss is also written there as an events_lost line, so that `bullpen report` can say what
// its figures miss: by the caller with its batch's lines, or here once a commit of its own counted it.
import type { EventsLost, Logger } from '@bullpen/core';
import { EVENT_METRICS } from './event-counting';
import type { BatchLog } from './event-log-feed';
import type { Cursor } from './lane-cursor';
import { eventsLost } from './lifecycle-lines';
import type { LaneStateStore } from './lane-state-store';
import { LaneDelta, type SeriesStore } from './stored-series';
import { assessLoss, compareStreamIds, START_POSITION, type StreamInfo } from './stream-loss';

export interface LossRecorderDeps {
  state: LaneStateStore;
  store: SeriesStore;
  logger: Logger;
  /** Reloads a lane whose commit found its saved position moved (lane-reload.ts). */
  reload: (cursor: Cursor) => Promise<void>;
  /** The lifecycle event log (EVENT_LOG_FILE), when it is on. */
  eventLog?: BatchLog;
}

export interface LossCheck {
  /** Entries found lost: in the caller's `delta` (its commit must add them to `read`) unless committed here. */
  lost: number;
  /** The cursor no longer points into the stream the caller read (it was recreated, or reloaded). */
  reset: boolean;
  /** Another exporter committed first; the lane was reloaded. */
  conflict: boolean;
  /** The loss found in the caller's `delta`, for its events_lost line with the batch's lines. */
  found?: EventsLost;
}

export class LossRecorder {
  private unsupportedLogged = false;

  constructor(private readonly deps: LossRecorderDeps) {}

  /**
   * Compares the stream with the cursor and commits what was lost (with the new position when
   * the stream was recreated). `delta` receives the lost count when the caller commits itself.
   */
  async check(
    cursor: Cursor,
    info: StreamInfo | undefined,
    heldIds: readonly string[],
    delta?: LaneDelta,
  ): Promise<LossCheck> {
    const verdict = assessLoss(info, cursor.position, cursor.read, heldIds);
    const logger = this.deps.logger;
    if (verdict.kind === 'unknown') {
      if (!this.unsupportedLogged) {
        this.unsupportedLogged = true;
        logger.warn('this Redis does not report entries-added (Redis 7+): trimmed events cannot be detected');
      }
      return { lost: 0, reset: false, conflict: false };
    }
    if (verdict.kind === 'none') return { lost: 0, reset: false, conflict: false };
    if (verdict.kind === 'lost' && delta) {
      this.logTrimmed(cursor, verdict.lost, info);
      countLost(delta, cursor.lane, verdict.lost);
      // Every entry of the batch before the stream's first one was read; the lost ones follow them.
      const first = info?.firstEntryId;
      const held = first === undefined ? heldIds : heldIds.filter((id) => compareStreamIds(id, first) < 0);
      const found = info && eventsLost(cursor.lane, verdict.lost, held[held.length - 1] ?? cursor.position, cursor.read + held.length, info);
      return { lost: verdict.lost, reset: false, conflict: false, ...(found ? { found } : {}) };
    }
    const own = new LaneDelta();
    countLost(own, cursor.lane, verdict.lost);
    const position = verdict.kind === 'recreated' ? START_POSITION : cursor.position;
    const read = verdict.kind === 'recreated' ? verdict.read : cursor.read + verdict.lost;
    const [totals] = await this.deps.state.commit([
      { lane: cursor.lane, expected: cursor.saved, position, readDelta: read - cursor.read, delta: own },
    ]);
    if (!totals) {
      // Not said before the commit: a stream that looks recreated (fewer entries than were read)
      // is also what Redis shows after losing the exporter's last commits, which reload tells apart.
      await this.deps.reload(cursor);
      return { lost: 0, reset: true, conflict: true };
    }
    if (verdict.kind === 'recreated') {
      logger.warn('the lane stream was deleted or recreated: counting it again from its start', {
        lane: cursor.lane,
        position: cursor.position,
        lost: verdict.lost,
      });
    } else {
      this.logTrimmed(cursor, verdict.lost, info);
    }
    this.deps.store.apply(cursor.lane, own);
    this.deps.store.adoptTotals(cursor.lane, totals);
    const { eventLog } = this.deps;
    if (eventLog && verdict.lost > 0 && info) {
      // Written once the commit says the loss is this exporter's to count (a stream that looks
      // recreated may be a Redis that lost commits, see above); waited for as a batch's lines are.
      const recreated = verdict.kind === 'recreated';
      eventLog.lost(eventsLost(cursor.lane, verdict.lost, recreated ? START_POSITION : cursor.position, recreated ? 0 : cursor.read, info));
      await eventLog.written();
    }
    Object.assign(cursor, { position, saved: position, read });
    return { lost: verdict.lost, reset: verdict.kind === 'recreated', conflict: false };
  }

  private logTrimmed(cursor: Cursor, lost: number, info: StreamInfo | undefined): void {
    this.deps.logger.warn('events lost: the lane stream was trimmed past the saved position', {
      lane: cursor.lane,
      lost,
      position: cursor.position,
      firstEntry: info?.firstEntryId,
    });
  }
}

/** Adds `lost` entries to the lane's count and, when there are any, stamps the time of the loss. */
function countLost(delta: LaneDelta, lane: string, lost: number): void {
  if (lost <= 0) return;
  delta.inc(EVENT_METRICS.lost, { lane }, lost);
  delta.stamp(EVENT_METRICS.lostAt, { lane });
}
