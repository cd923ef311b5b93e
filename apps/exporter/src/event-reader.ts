// Reads every lane's event stream with one blocking XREAD on a dedicated connection, counts each
// batch, and commits the counts with the new position before showing them (lane-state-store.ts).
// A batch whose commit fails is retried; one that conflicts (another exporter got there first, or
// Redis lost the exporter's last commits) is dropped and the lane's state reloaded (lane-reload.ts),
// so a count is never applied twice. A worker's entry that its connection wrote twice (a lost
// reply, the write sent again) is counted once (resent-flushes.ts). With an event log, a batch's lines are written just before
// its commit (event-log-feed.ts).
// Entries trimmed away before they were read are counted as lost (loss-recorder.ts). A Redis that
// refuses the reader's access (an ACL user without XREAD) is said through the connection watch, not
// as one more retried error: retrying does not fix it, and the reader is not reading meanwhile.
import type { RedisClient, RedisConnectionWatch, RedisTarget } from '@bullpen/core';
import {
  createRedis,
  decodeLaneEventBuffers,
  jobKeys,
  laneEventsKey,
  parseAttemptLogRow,
  terminalErrorClass,
  type DecodedLaneEvent,
  type ErrorClass,
  type EventsLost,
  type Logger,
  type MetricLabels,
} from '@bullpen/core';
import { countFailures, countLaneBatch } from './event-counting';
import type { BatchLog } from './event-log-feed';
import type { Cursor } from './lane-cursor';
import { LaneReload } from './lane-reload';
import { isNoSuchKey, LaneStateStore, type LaneCommit } from './lane-state-store';
import { LossRecorder } from './loss-recorder';
import { ResentFlushes } from './resent-flushes';
import type { LaneDelta, SeriesStore } from './stored-series';
import { stopSignal } from './stop-signal';
import { compareStreamIds, parseStreamInfo, START_POSITION } from './stream-loss';

export interface EventReaderOptions {
  redis: RedisTarget;
  prefix: string;
  lanes: readonly string[];
  labels: MetricLabels;
  store: SeriesStore;
  logger: Logger;
  /** Entries read per lane per XREAD; default 1000. */
  batchSize?: number;
  /** How long one XREAD blocks when nothing arrives; default 1000 ms. */
  blockMs?: number;
  /**
   * After a batch that filled no lane's COUNT, the next XREAD starts at least this long after the
   * last one began; default READ_INTERVAL_MS. A busy lane then arrives in a few large batches
   * rather than many small ones; a lane that fills its COUNT is read again at once.
   */
  readIntervalMs?: number;
  /** How long to wait before retrying after a Redis error; default 500 ms. */
  retryDelayMs?: number;
  /** Called after the lane's state was (re)loaded, to pre-initialise its zero series. */
  onLaneLoaded?: (lane: string) => void;
  /** Called when a commit lost to another exporter (not when Redis lost the exporter's commits). */
  onConflict?: (lane: string) => void;
  /** A lane's saved state was gone from Redis: it lost its data (lane-reload.ts). */
  onGone?: (lane: string) => void;
  /** Called with the number of entries of every XREAD that returned some. */
  onRead?: (entries: number) => void;
  /** The lifecycle event log (EVENT_LOG_FILE), when it is on. */
  eventLog?: BatchLog;
  /**
   * Watches the reader's connections' errors, and is told of the access refusals among its
   * commands' errors, which it logs (once, then once per interval with a count). Without it, those
   * are warned of like any other error.
   */
  access?: RedisConnectionWatch;
}

/** How long close() lets a batch in flight finish before abandoning it. */
const CLOSE_GRACE_MS = 2000;

/**
 * Reads paced at 10 a second while the reader keeps up. Each round trip costs the exporter and
 * Redis a write and a wake-up whatever it carries: read as soon as anything arrived, a stream fed
 * by a busy worker came 30-40 entries at a time, and the exporter spent about as much CPU per job
 * as the worker. Counts are at most this much later, against scrapes every 15 s.
 */
export const READ_INTERVAL_MS = 100;

/** XREAD's reply read as Buffers (see decodeLaneEventBuffers). */
type StreamEntry = [id: Buffer, fields: Buffer[]];
type XReadReply = Array<[key: Buffer, entries: StreamEntry[]]>;

interface LaneWork {
  cursor: Cursor;
  /** The batch's entry ids, in order; the entries themselves are not kept (see releaseReply). */
  ids: string[];
  events: DecodedLaneEvent[];
  delta: LaneDelta;
  failedJobIds: string[];
  failedReasons: string[];
  /** Entries trimmed after the batch, before they were read. */
  lost?: EventsLost;
  /** What the lane's ResentFlushes learns once the batch is committed. */
  flushes: Map<string, number>;
}

export class EventReader {
  private readonly cursors: Cursor[];
  private readonly byKey: Map<string, Cursor>;
  /** By lane: the entries workers' connections wrote twice. */
  private readonly resent = new Map<string, ResentFlushes>();
  private readonly batchSize: number;
  private readonly blockMs: number;
  private readonly readIntervalMs: number;
  private readonly retryDelayMs: number;
  private reader: RedisClient | undefined;
  private writer: RedisClient | undefined;
  private state: LaneStateStore | undefined;
  private loss: LossRecorder | undefined;
  private reloader: LaneReload | undefined;
  private running: Promise<void> | undefined;
  private stopping = false;
  /** Settles when close() is called: abandons a blocking XREAD or a retry pause. */
  private readonly stopped = stopSignal();
  /** Settles when close() gives up waiting: abandons Redis calls stuck behind an outage. */
  private readonly abandoned = stopSignal();
  private stateLoaded = false;
  private failed = false;
  /** What Redis refused the reader's last attempt, explained; cleared by the next that succeeds. */
  private refused: string | undefined;

  constructor(private readonly options: EventReaderOptions) {
    this.batchSize = options.batchSize ?? 1000;
    this.blockMs = options.blockMs ?? 1000;
    this.readIntervalMs = options.readIntervalMs ?? READ_INTERVAL_MS;
    this.retryDelayMs = options.retryDelayMs ?? 500;
    this.cursors = options.lanes.map((lane) => ({
      lane,
      key: laneEventsKey(options.prefix, lane),
      position: START_POSITION,
      saved: '',
      read: 0,
    }));
    this.byKey = new Map(this.cursors.map((c) => [c.key, c]));
  }

  /** True once every lane's state is loaded and the read loop runs: the saved totals can be served. */
  get loaded(): boolean {
    return this.stateLoaded && !this.failed && !this.stopping;
  }

  /** True while the totals are loaded and the streams being read: Redis does not refuse the reads. */
  get up(): boolean {
    return this.loaded && this.refused === undefined;
  }

  /** Why Redis refuses the reader's reads or commits (explainAccessRefusal), until one succeeds again. */
  get refusal(): string | undefined {
    return this.refused;
  }

  /** False only when the read loop died of an unexpected error (the process should be restarted). */
  get healthy(): boolean {
    return !this.failed;
  }

  /** The position up to which a lane is counted. */
  position(lane: string): string {
    return this.cursors.find((c) => c.lane === lane)?.position ?? START_POSITION;
  }

  start(): void {
    if (this.running) return;
    this.reader = createRedis(this.options.redis, 'events', 'bullpen-exporter-reader');
    this.writer = createRedis(this.options.redis, 'events', 'bullpen-exporter');
    this.options.access?.watch(this.reader);
    this.options.access?.watch(this.writer);
    this.state = new LaneStateStore(this.writer, this.options.prefix);
    const { store, logger, onLaneLoaded, onConflict, onGone } = this.options;
    this.reloader = new LaneReload({ state: this.state, store, logger, onLaneLoaded, onConflict, onGone });
    const { eventLog } = this.options;
    this.loss = new LossRecorder({ state: this.state, store, logger, reload: (cursor) => this.reload(cursor), ...(eventLog ? { eventLog } : {}) });
    this.running = this.run().catch((err: unknown) => {
      this.failed = true;
      this.options.logger.error('event reader stopped', { err: String((err as Error).stack ?? err) });
    });
  }

  async close(): Promise<void> {
    this.stopping = true;
    this.stopped.fire();
    // A batch being counted and committed may finish...
    const timer = setTimeout(() => this.abandoned.fire(), CLOSE_GRACE_MS);
    await this.running;
    clearTimeout(timer);
    // ...unless Redis is away and its commands wait for it: they are then abandoned, which is
    // safe, as nothing uncommitted was shown and the next start resumes from the saved state.
    // (ioredis never settles commands queued while reconnecting when disconnected, hence the
    // signals rather than waiting for the rejections.)
    this.reader?.disconnect();
    this.writer?.disconnect();
  }

  private async run(): Promise<void> {
    for (const cursor of this.cursors) {
      await this.retrying(`loading the state of lane ${cursor.lane}`, () => this.loadLane(cursor));
      if (this.stopping) return;
    }
    this.stateLoaded = true;
    this.options.logger.info('reading lane event streams', {
      lanes: this.cursors.map((c) => ({ lane: c.lane, position: c.position, read: c.read })),
    });
    // A monotonic clock: with the wall clock, a step back (NTP, a VM resumed) lengthened the wait
    // by the step, and the reader stopped reading for as long, while the streams filled and were
    // trimmed past it.
    let lastReadAt = Number.NEGATIVE_INFINITY;
    let lastFull = false;
    while (!this.stopping) {
      if (!lastFull) {
        const wait = lastReadAt + this.readIntervalMs - performance.now();
        if (wait > 0) await this.wait(wait);
        if (this.stopping) return;
      }
      lastReadAt = performance.now();
      let reply: XReadReply | null;
      try {
        reply = (await this.stopped.race(this.reader!.xreadBuffer(
          'COUNT',
          this.batchSize,
          'BLOCK',
          this.blockMs,
          'STREAMS',
          ...this.cursors.map((c) => c.key),
          ...this.cursors.map((c) => c.position),
        ))) as XReadReply | null;
      } catch (err) {
        if (this.stopping) return;
        this.failedWith('reading lane streams', err);
        await this.pause();
        continue;
      }
      this.refused = undefined;
      lastFull = reply?.some(([, entries]) => entries.length >= this.batchSize) ?? false;
      if (reply) {
        this.options.onRead?.(reply.reduce((sum, [, entries]) => sum + entries.length, 0));
        await this.retrying('counting a batch', () => this.processBatch(reply));
        releaseReply(reply);
      }
    }
  }

  /** Runs `step` until it succeeds or the reader stops; Redis errors are logged and retried. */
  private async retrying(what: string, step: () => Promise<void>): Promise<void> {
    while (!this.stopping) {
      try {
        await this.abandoned.race(step());
        this.refused = undefined;
        return;
      } catch (err) {
        if (this.stopping) return;
        this.failedWith(what, err);
        await this.pause();
      }
    }
  }

  /**
   * Says why a step failed before it is retried. An access refusal goes to the connection watch,
   * which names the command or key and what to grant, once per interval however often the reader
   * retries; anything else (an outage, a timeout) is warned of here.
   */
  private failedWith(what: string, err: unknown): void {
    const refused = this.options.access?.note(err);
    if (refused !== undefined) {
      this.refused = refused;
      return;
    }
    this.options.logger.warn(`${what} failed; retrying`, { err: (err as Error).message });
  }

  private pause(): Promise<void> {
    return this.wait(this.retryDelayMs);
  }

  /** Waits `ms`, or until close() is called. */
  private async wait(ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const delay = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
    await this.stopped.race(delay).catch(() => undefined);
    clearTimeout(timer);
  }

  private async loadLane(cursor: Cursor): Promise<void> {
    const state = this.state!;
    for (;;) {
      const saved = await state.load(cursor.lane);
      if (saved.position === undefined) {
        // First start for this lane: count every entry still in the stream; entries trimmed
        // before the exporter ever ran are not "lost" by it.
        const info = await state.streamInfo(cursor.key);
        const baseline = info?.entriesAdded !== undefined ? Math.max(0, info.entriesAdded - info.length) : 0;
        const [ok] = await state.commit([
          { lane: cursor.lane, expected: '', position: START_POSITION, readDelta: baseline, delta: undefined },
        ]);
        if (!ok) continue;
        Object.assign(cursor, { position: START_POSITION, saved: START_POSITION, read: baseline });
        this.options.store.loadLane(cursor.lane, {});
        this.options.logger.info('no saved state: counting the lane stream from its start', {
          lane: cursor.lane,
          entries: info?.length ?? 0,
        });
      } else {
        Object.assign(cursor, { position: saved.position, saved: saved.position, read: saved.read });
        const unknown = this.options.store.loadLane(cursor.lane, saved.series);
        if (unknown.length > 0) {
          this.options.logger.warn('ignoring saved fields of metrics no longer in the catalogue', {
            lane: cursor.lane,
            fields: unknown.slice(0, 10),
          });
        }
      }
      this.options.onLaneLoaded?.(cursor.lane);
      const checked = await this.loss!.check(cursor, await state.streamInfo(cursor.key), []);
      if (checked.conflict) continue;
      return;
    }
  }

  private resentOf(lane: string): ResentFlushes {
    let resent = this.resent.get(lane);
    if (!resent) {
      resent = new ResentFlushes();
      this.resent.set(lane, resent);
    }
    return resent;
  }

  /** After a commit found the saved position moved: see lane-reload.ts. */
  private async reload(cursor: Cursor): Promise<void> {
    // Started over from the stream's first entry: every entry is counted again, and the flush
    // numbers seen before would take those still in the stream for copies.
    if ((await this.reloader!.reload(cursor)) === 'gone') this.resent.delete(cursor.lane);
  }

  private async processBatch(reply: XReadReply): Promise<void> {
    const work: LaneWork[] = [];
    for (const [key, all] of reply) {
      const cursor = this.byKey.get(key.toString());
      if (!cursor) continue;
      // After a retried batch, lanes already committed have moved on: skip what they counted.
      const first = all[0];
      const unread = first && compareStreamIds(first[0].toString(), cursor.position) > 0;
      const ids: string[] = [];
      const decoded: DecodedLaneEvent[] = [];
      for (const [id, fields] of all) {
        const text = id.toString();
        if (!unread && compareStreamIds(text, cursor.position) <= 0) continue;
        ids.push(text);
        decoded.push(decodeLaneEventBuffers(fields));
      }
      if (ids.length === 0) continue;
      const { events, resent, seen } = this.resentOf(cursor.lane).screen(decoded);
      if (resent > 0) this.options.logger.debug('completed-attempt entries written twice by a worker counted once', { lane: cursor.lane, entries: resent });
      const { delta, failedJobIds, failedReasons } = countLaneBatch(cursor.lane, events, this.options.labels);
      work.push({ cursor, ids, events, delta, failedJobIds, failedReasons, flushes: seen });
    }
    if (work.length === 0) return;

    // One round trip for every lane's stream info (loss check) and every failure's last attempt row.
    const pipeline = this.writer!.pipeline();
    for (const w of work) pipeline.xinfo('STREAM', w.cursor.key);
    for (const w of work) {
      for (const jobId of w.failedJobIds) pipeline.lindex(jobKeys(this.options.prefix, w.cursor.lane, jobId).logs, -1);
    }
    const results = (await pipeline.exec()) ?? [];
    let next = work.length;

    const commits: LaneCommit[] = [];
    const committed: LaneWork[] = [];
    for (const [i, w] of work.entries()) {
      const [infoErr, infoReply] = results[i] ?? [new Error('no reply'), null];
      if (infoErr && !isNoSuchKey(infoErr)) throw infoErr;
      const info = infoErr ? undefined : parseStreamInfo(infoReply);
      const classes: ErrorClass[] = [];
      for (let k = 0; k < w.failedJobIds.length; k += 1) {
        const [rowErr, row] = results[next++] ?? [new Error('no reply'), null];
        if (rowErr) throw rowErr;
        const parsed = typeof row === 'string' ? parseAttemptLogRow(row) : undefined;
        classes.push(this.options.labels.errorClass(terminalErrorClass(w.failedReasons[k], parsed?.errorClass)));
      }
      const { ids } = w;
      const loss = await this.loss!.check(w.cursor, info, ids, w.delta);
      if (loss.reset) continue; // the batch belongs to a stream that is gone; read again
      countFailures(w.cursor.lane, w.delta, classes);
      const last = ids[ids.length - 1] as string;
      commits.push({
        lane: w.cursor.lane,
        expected: w.cursor.saved,
        position: last,
        readDelta: ids.length + loss.lost,
        delta: w.delta,
      });
      if (loss.found) w.lost = loss.found;
      committed.push(w);
    }

    const { eventLog } = this.options;
    if (eventLog && committed.length > 0) {
      for (const w of committed) {
        eventLog.append(w.cursor.lane, w.ids.map((id, i) => [id, w.events[i] as DecodedLaneEvent] as const));
        if (w.lost) eventLog.lost(w.lost);
      }
      await eventLog.written();
    }
    const outcomes = await this.state!.commit(commits);
    for (const [i, w] of committed.entries()) {
      const commit = commits[i] as LaneCommit;
      const totals = outcomes[i];
      if (totals) {
        this.options.store.apply(w.cursor.lane, w.delta);
        this.options.store.adoptTotals(w.cursor.lane, totals);
        this.resentOf(w.cursor.lane).adopt(w.flushes);
        Object.assign(w.cursor, { position: commit.position, saved: commit.position, read: w.cursor.read + commit.readDelta });
      } else {
        await this.reload(w.cursor);
      }
    }
  }
}

/**
 * Empties a counted XREAD reply's arrays. Nothing of bullpen's keeps a reply past its batch, and a
 * full collection finds it unreachable, yet young-generation collections kept copying and then
 * promoting the replies: something already in old space (seen with ioredis's own command objects;
 * only a full collection notices such a holder is dead) still pointed at them. In a drain of
 * 50,000 jobs the exporter promoted 88 MB of entries and spent about 200 ms in scavenges, a third of
 * its CPU. With the arrays emptied, whatever still points at a reply holds two empty arrays, and the
 * entries die young: 14 MB promoted, 50–70 ms.
 */
function releaseReply(reply: XReadReply): void {
  for (const lane of reply) lane[1].length = 0;
  reply.length = 0;
}
