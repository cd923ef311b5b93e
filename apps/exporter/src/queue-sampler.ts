// Reads the scrape-time view of every lane, and of Redis's memory, in one round trip
// (lua/lane-snapshot.lua per lane plus CLIENT LIST and INFO memory on each primary, all sent at
// once), at a cost independent of how many jobs wait. Each script call touches one lane's keys
// only, so on a Redis Cluster each goes to the lane's node. Concurrent callers share one read, so
// the gauges of one scrape all see the same snapshot.
import {
  JOB_LOGS_SUFFIX,
  laneEventsKey,
  lanePrefix,
  laneRegistryKey,
  laneStateKeys,
  scriptCommand,
  QUEUE_JOB_STATES,
  readMemory,
  serverAddress,
  serversOf,
  whenReady,
  type QueueJobState,
  type RedisClient,
  type RedisMemory,
} from '@bullpen/core';

const SNAPSHOT = 'bullpenLaneSnapshot';
/** How long a scrape waits for a connection in progress; Prometheus' timeout is longer. */
const READY_WAIT_MS = 1000;
interface SnapshotCommand {
  [SNAPSHOT](...args: (string | number)[]): unknown;
}

export interface LaneSnapshot {
  jobs: Record<QueueJobState, number>;
  paused: boolean;
  /** Enqueue time of the job next in line that waited longest; 0 when nothing waits. */
  oldestWaitingMs: number;
  /** The first stream entry after the exporter's position, if any. */
  firstUnreadId: string | undefined;
  /**
   * The time on the clock of the Redis that holds the lane, read with the rest: stream ids are
   * its times, so the lag is measured against it, whatever the exporter's host clock says.
   */
  redisTimeMs: number;
  workers: number;
}

/** One primary: the memory it reports, under the address metrics name it by. */
export interface ServerSnapshot {
  /** `host:port` (serverAddress()). */
  address: string;
  memory: RedisMemory;
}

export interface QueueSnapshot {
  lanes: Map<string, LaneSnapshot>;
  /**
   * Lanes in the prefix's lane registry that the lanes file does not name and that still hold
   * jobs (completed ones aside), with their jobs by state.
   */
  unconfigured: Map<string, Record<QueueJobState, number>>;
  /** Every primary (the server itself when not a cluster). */
  servers: ServerSnapshot[];
  durationSeconds: number;
}

/**
 * BullMQ names a worker's blocking connection `<queue prefix>:<base64 queue name>`, plus
 * `:w:<name>` when named; a lane's queue prefix is `lanePrefix()`.
 */
export function workerConnectionName(prefix: string, lane: string): string {
  return `${lanePrefix(prefix, lane)}:${Buffer.from(lane).toString('base64')}`;
}

export function countWorkers(clientList: string, prefix: string, lanes: readonly string[]): Map<string, number> {
  const byName = new Map(lanes.map((lane) => [workerConnectionName(prefix, lane), lane]));
  const counts = new Map(lanes.map((lane) => [lane, 0]));
  for (const line of clientList.split('\n')) {
    const match = / name=(\S*)/.exec(line);
    const name = match?.[1];
    if (!name) continue;
    const marker = name.indexOf(':w:');
    const lane = byName.get(marker >= 0 ? name.slice(0, marker) : name);
    if (lane !== undefined) counts.set(lane, (counts.get(lane) ?? 0) + 1);
  }
  return counts;
}

export class QueueSampler {
  private inFlight: Promise<QueueSnapshot> | undefined;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly lanes: readonly string[],
    private readonly positionOf: (lane: string) => string,
    /** Told why a snapshot failed (it reads as bullpen_exporter_redis_up 0). */
    private readonly onError: (err: unknown) => void = () => undefined,
  ) {
    scriptCommand<SnapshotCommand>(redis, SNAPSHOT, 'lane-snapshot', 10);
  }

  /** A snapshot; joins the read in flight if there is one. */
  sample(): Promise<QueueSnapshot> {
    if (!this.inFlight) {
      this.inFlight = this.read()
        .catch((err: unknown) => {
          this.onError(err);
          throw err;
        })
        .finally(() => {
          this.inFlight = undefined;
        });
    }
    return this.inFlight;
  }

  /** lua/lane-snapshot.lua for one lane: its counts by state, then its paused flag, oldest waiting job, first unread entry and Redis's time. */
  private snapshotOf(lane: string, position: string): Promise<Array<number | string>> {
    const k = laneStateKeys(this.prefix, lane);
    return (this.redis as unknown as SnapshotCommand)[SNAPSHOT].call(
      this.redis,
      k.wait,
      k.paused,
      k.delayed,
      k.prioritized,
      k.active,
      k.completed,
      k.failed,
      k.waitingChildren,
      k.meta,
      laneEventsKey(this.prefix, lane),
      k.jobPrefix,
      position,
      JOB_LOGS_SUFFIX,
    ) as Promise<Array<number | string>>;
  }

  /** Registered lanes the lanes file does not name, with their jobs; one more round trip only when there are some. */
  private async unconfiguredLanes(registered: Promise<string[]>): Promise<QueueSnapshot['unconfigured']> {
    const configured = new Set(this.lanes);
    const others = (await registered).filter((lane) => !configured.has(lane)).sort();
    // No position of the exporter's in their streams: ask for entries from now on, which is cheap.
    const replies = await Promise.all(others.map((lane) => this.snapshotOf(lane, `${Date.now()}-0`)));
    const unconfigured: QueueSnapshot['unconfigured'] = new Map();
    others.forEach((lane, i) => {
      const jobs = {} as Record<QueueJobState, number>;
      QUEUE_JOB_STATES.forEach((state, s) => (jobs[state] = Number(replies[i]?.[s] ?? 0)));
      if (QUEUE_JOB_STATES.some((state) => state !== 'completed' && jobs[state] > 0)) unconfigured.set(lane, jobs);
    });
    return unconfigured;
  }

  private async read(): Promise<QueueSnapshot> {
    const started = process.hrtime.bigint();
    // The scrape connection fails fast by design; right after a (re)connect, give it a moment.
    await whenReady(this.redis, READY_WAIT_MS);
    const replies = this.lanes.map((lane) => this.snapshotOf(lane, this.positionOf(lane)));
    const unconfigured = this.unconfiguredLanes(this.redis.smembers(laneRegistryKey(this.prefix)));
    // Each primary's own state: its connections and its memory. A failed read of either fails
    // the snapshot, as a failed lane read does (bullpen_exporter_redis_up 0).
    const perServer = serversOf(this.redis).map(async (server) => {
      const [list, memory] = await Promise.all([server.client('LIST') as Promise<string>, readMemory(server)]);
      return { list: String(list), server: { address: serverAddress(server), memory } };
    });
    const [results, read, others] = await Promise.all([Promise.all(replies), Promise.all(perServer), unconfigured]);
    // On a cluster a worker's named connection is on one primary or another: like BullMQ's
    // getWorkers(), count each lane on the primary where it has the most.
    const workers = new Map<string, number>();
    for (const { list } of read) {
      for (const [lane, n] of countWorkers(list, this.prefix, this.lanes)) {
        workers.set(lane, Math.max(workers.get(lane) ?? 0, n));
      }
    }

    const lanes = new Map<string, LaneSnapshot>();
    this.lanes.forEach((lane, i) => {
      const values = results[i] ?? [];
      const jobs = {} as Record<QueueJobState, number>;
      QUEUE_JOB_STATES.forEach((state, s) => (jobs[state] = Number(values[s] ?? 0)));
      const firstUnread = String(values[10] ?? '');
      lanes.set(lane, {
        jobs,
        paused: Number(values[8]) === 1,
        oldestWaitingMs: Number(values[9] ?? 0),
        firstUnreadId: firstUnread === '' ? undefined : firstUnread,
        redisTimeMs: Number(values[11] ?? 0),
        workers: workers.get(lane) ?? 0,
      });
    });
    const durationSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    return { lanes, unconfigured: others, servers: read.map((r) => r.server), durationSeconds };
  }
}
