// Where the exporter keeps, per lane, its stream position together with the totals counted up to
// it (lua/exporter-commit.lua), so that a restart, even after SIGKILL, resumes exactly there.
import type { RedisClient } from '@bullpen/core';
import type { ChainableCommander } from 'ioredis';
import { exporterStateKey, scriptCommand } from '@bullpen/core';
import type { LaneDelta } from './stored-series';
import { parseStreamInfo, type StreamInfo } from './stream-loss';

const COMMIT = 'bullpenExporterCommit';
const POSITION_FIELD = 'pos';
const READ_FIELD = 'read';

interface CommitCommand {
  [COMMIT](...args: (string | number)[]): unknown;
}

export interface SavedLaneState {
  /** The saved position; undefined when this lane has no state yet. */
  position: string | undefined;
  /** Entries accounted for up to the position. */
  read: number;
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

export class LaneStateStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {
    scriptCommand<CommitCommand>(redis, COMMIT, 'exporter-commit', 1);
  }

  async load(lane: string): Promise<SavedLaneState> {
    const fields = await this.redis.hgetall(exporterStateKey(this.prefix, lane));
    const { [POSITION_FIELD]: position, [READ_FIELD]: read, ...series } = fields;
    return { position, read: Number(read ?? 0), series };
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
