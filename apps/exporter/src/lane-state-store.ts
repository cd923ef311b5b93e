// Where the exporter keeps, per lane, its stream position together with the totals counted up to
// it (lua/exporter-commit.lua), so that a restart, even after SIGKILL, resumes exactly there.
import { randomBytes } from 'node:crypto';
import type { RedisClient } from '@bullpen/core';
import type { ChainableCommander } from 'ioredis';
import { exporterStateKey, scriptCommand } from '@bullpen/core';
import type { LaneDelta, LaneShortfall } from './stored-series';
import { compareStreamIds, parseStreamInfo, type StreamInfo } from './stream-loss';

const COMMIT = 'bullpenExporterCommit';
const RESTORE = 'bullpenExporterRestore';
const POSITION_FIELD = 'pos';
const READ_FIELD = 'read';
const WRITER_FIELD = 'writer';

interface CommitCommand {
  [COMMIT](...args: (string | number)[]): unknown;
}
interface RestoreCommand {
  [RESTORE](...args: (string | number)[]): Promise<number>;
}

export interface SavedLaneState {
  /** The saved position; undefined when this lane has no state yet. */
  position: string | undefined;
  /** Entries accounted for up to the position. */
  read: number;
  /** The writer id of the exporter that committed the position (absent before writers were saved). */
  writer: string | undefined;
  /** Persisted series fields (everything besides position and read). */
  series: Record<string, string>;
}

export interface LaneCommit {
  lane: string;
  /** The saved position the batch was read after ('' when none was saved). */
  expected: string;
  position: string;
  readDelta: number;
  delta: LaneDelta | undefined;
}

/** Totals written back after Redis lost commits of them (lua/exporter-restore.lua). */
export interface LaneRestore {
  lane: string;
  /** The saved position just loaded. */
  expected: string;
  position: string;
  /** Entries accounted for up to `position` (the new value, not a delta). */
  read: number;
  shortfall: LaneShortfall;
}

/** The entries of a stream in a range of ids, and the stream itself, at one instant. */
export interface StreamSpan {
  /** The stream; undefined when it does not exist. */
  info: StreamInfo | undefined;
  /** How many entries lie after the range's start and at or before its end. */
  count: number;
  /** The last of them; undefined when there are none. */
  last: string | undefined;
}

export class LaneStateStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    /** Saved with each commit: names this exporter's commits, new with each start. */
    readonly writer: string = randomBytes(8).toString('hex'),
  ) {
    scriptCommand<CommitCommand>(redis, COMMIT, 'exporter-commit', 1);
    scriptCommand<RestoreCommand>(redis, RESTORE, 'exporter-restore', 1);
  }

  async load(lane: string): Promise<SavedLaneState> {
    const fields = await this.redis.hgetall(exporterStateKey(this.prefix, lane));
    const { [POSITION_FIELD]: position, [READ_FIELD]: read, [WRITER_FIELD]: writer, ...series } = fields;
    return { position, read: Number(read ?? 0), writer, series };
  }

  /** XINFO STREAM of a lane stream; undefined when the stream does not exist. */
  async streamInfo(key: string): Promise<StreamInfo | undefined> {
    try {
      return parseStreamInfo(await this.redis.xinfo('STREAM', key));
    } catch (err) {
      if (isNoSuchKey(err)) return undefined;
      throw err;
    }
  }

  /**
   * The entries of stream `key` after `after` and up to `upTo`, with the stream's XINFO, in one
   * MULTI so that the count and the stream's counters agree. Reads the entries themselves (Redis
   * has no count of a range): called only after Redis lost commits, where they are the entries
   * the lost commits had counted that Redis kept, a fraction of a second of events.
   */
  async span(key: string, after: string, upTo: string): Promise<StreamSpan> {
    const results = (await this.redis.multi().xinfo('STREAM', key).xrange(key, after, upTo).exec()) ?? [];
    const [infoErr, infoReply] = results[0] ?? [new Error('no reply'), null];
    if (infoErr && !isNoSuchKey(infoErr)) throw infoErr;
    const [rangeErr, rangeReply] = results[1] ?? [new Error('no reply'), null];
    if (rangeErr) throw rangeErr;
    // XRANGE's start is inclusive (its exclusive form needs Redis 6.2): the entry at `after` is not one of them.
    const ids = (rangeReply as Array<[string, unknown]>).map(([id]) => id).filter((id) => compareStreamIds(id, after) > 0);
    return { info: infoErr ? undefined : parseStreamInfo(infoReply), count: ids.length, last: ids[ids.length - 1] };
  }

  /** Writes back totals Redis lost (see LaneRestore); false when the saved position moved meanwhile. */
  async restore(r: LaneRestore): Promise<boolean> {
    const ints = [...r.shortfall.ints];
    const args: (string | number)[] = [exporterStateKey(this.prefix, r.lane), r.expected, r.position, r.read, ints.length];
    for (const [field, by] of ints) args.push(field, by);
    for (const [field, total] of r.shortfall.sums) args.push(field, String(total));
    return Number(await (this.redis as unknown as RestoreCommand)[RESTORE](...args)) === 1;
  }

  /**
   * Commits several lanes in one round trip. Per lane: undefined on conflict; when committed, the
   * new totals of the batch's float fields (histogram sums) as Redis keeps them and the time
   * Redis stamped its stamp fields with, to be adopted (SeriesStore.adoptTotals) so that what is
   * served is what a restart reloads.
   */
  async commit(commits: readonly LaneCommit[]): Promise<Array<ReadonlyMap<string, number> | undefined>> {
    if (commits.length === 0) return [];
    const pipeline = this.redis.pipeline();
    for (const c of commits) this.addCommit(pipeline, c);
    const results = (await pipeline.exec()) ?? [];
    return commits.map((c, i) => {
      const [err, reply] = results[i] ?? [new Error('no reply'), null];
      if (err) throw new Error(`committing lane ${c.lane}: ${err.message}`);
      if (!Array.isArray(reply) || Number(reply[0]) !== 1) return undefined;
      const fields = c.delta ? [...c.delta.floats.keys()] : [];
      const totals = new Map(fields.map((field, k) => [field, Number(reply[k + 1])]));
      for (const field of c.delta?.stamps ?? []) totals.set(field, Number(reply[fields.length + 1]));
      return totals;
    });
  }

  private addCommit(pipeline: ChainableCommander, c: LaneCommit): void {
    const ints = c.delta ? [...c.delta.ints] : [];
    const floats = c.delta ? [...c.delta.floats] : [];
    const stamps = c.delta ? [...c.delta.stamps] : [];
    const args: (string | number)[] = [
      exporterStateKey(this.prefix, c.lane),
      c.expected,
      c.position,
      c.readDelta,
      this.writer,
      ints.length,
      stamps.length,
    ];
    for (const [field, by] of ints) args.push(field, by);
    args.push(...stamps);
    for (const [field, by] of floats) args.push(field, by);
    (pipeline as unknown as CommitCommand)[COMMIT](...args);
  }
}

export function isNoSuchKey(err: unknown): boolean {
  return err instanceof Error && /no such key/i.test(err.message);
}
