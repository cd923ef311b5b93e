// Tells that Redis lost bullpen's data: restarted without persistence, was flushed, or failed over
// to a replica that never had it. Redis answers as if nothing happened, and jobs it acknowledged
// are simply gone, so each process says so. The first process to reach a Redis writes a marker
// (a random id and Redis's time, once, SET NX); every process remembers the marker it last saw, and
// reads it again each time its connection is ready and every REDIS_MARKER_CHECK_INTERVAL_MS
// between: a flush drops no connection, and a process that only looked at its next reconnect
// would say days later, at a routine restart that lost nothing, what happened days before. Gone
// or replaced, the data it stood with is gone too. One GET per interval and reconnect; no job
// costs a Redis call more.
import { randomUUID } from 'node:crypto';
import { redisMarkerKey } from './keys';
import type { Logger } from './logger';
import type { RedisClient } from './redis';
import { serverAddressOfKey, serverOfKey } from './redis-memory';

/** REDIS_MARKER_CHECK_INTERVAL_MS's default: how long a flush may go unsaid by a process. */
export const DEFAULT_MARKER_CHECK_INTERVAL_MS = 30_000;

/** Why the marker was read: the connection was ready, the interval came round, or a caller asked (the exporter, finding a lane's state gone). */
export type MarkerReadCause = 'ready' | 'interval' | 'asked';

/** What a process found when it read the marker again. */
export interface RedisDataLoss {
  /** The server that holds the marker (host:port, or the Sentinel master group). */
  redis: string;
  /** The marker's key. */
  key: string;
  /** `missing`: this process found no marker and wrote a new one; `replaced`: another process had. */
  marker: 'missing' | 'replaced';
  /**
   * When the marker found was written (Redis's clock, ISO 8601): about when Redis was found to
   * have lost the data, by whichever process found it first. Absent for a marker of an older
   * bullpen, which wrote no time.
   */
  markerWrittenAt?: string;
}

export interface RedisDataLossWatchOptions {
  /** BULLPEN_PREFIX: the marker is `<prefix>:bp:marker` (keys.ts). */
  prefix: string;
  /** Where a loss is said, at error. */
  logger: Logger;
  /**
   * REDIS_MARKER_CHECK_INTERVAL_MS: how often watchConnection reads the marker between reconnects,
   * so that a flush is said within this long; default 30000.
   */
  intervalMs?: number;
  /** Called once for each loss found, after it is logged (to count it, to write back what the process keeps in Redis). Default: nothing. */
  onLoss?: (loss: RedisDataLoss) => void;
}

/** What a loss means for bullpen's users, and what to check. */
export function redisDataLossMessage(key: string, loss?: Pick<RedisDataLoss, 'marker' | 'markerWrittenAt'>): string {
  const found =
    loss?.marker === 'replaced'
      ? `was replaced: another bullpen process found it gone and wrote a new one${loss.markerWrittenAt ? ` at ${loss.markerWrittenAt}` : ''}, about when Redis lost the data`
      : 'is gone';
  return (
    `Redis lost bullpen's data: the marker ${key} that bullpen wrote to it ${found}. Redis restarted without ` +
    'persistence, was flushed, or failed over to a replica that did not have the data. Jobs that bullpen ' +
    'acknowledged before may be gone (waiting, delayed and running jobs, their results, dead letters) and ' +
    'cannot be recovered from Redis; the exporter counts each lane again from 0 at its next events, and paused ' +
    'lanes run again. Check Redis persistence (appendonly yes), and what restarted or flushed it'
  );
}

/** A marker's value: a random id, then the writer's reading of Redis's clock in ms. */
function markerValue(id: string, writtenMs: number): string {
  return `${id}@${writtenMs}`;
}

/** When `value` was written, ISO 8601; undefined for a marker without a time (an older bullpen's). */
function writtenAt(value: string): string | undefined {
  const ms = Number(value.slice(value.lastIndexOf('@') + 1));
  return value.includes('@') && Number.isSafeInteger(ms) && ms > 0 ? new Date(ms).toISOString() : undefined;
}

/** Redis's clock in ms, read on the server that holds `key` (one clock for every writer); this host's if TIME is refused. */
async function redisTimeMs(client: RedisClient, key: string): Promise<number> {
  try {
    const [seconds, micros] = await (serverOfKey(client, key) ?? client).time();
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  } catch {
    return Date.now();
  }
}

export class RedisDataLossWatch {
  /** The marker as this process last saw it; undefined until a first reading succeeds. */
  private marker: string | undefined;
  /** Readings run one at a time, so that one loss seen by two at once is said once. */
  private queue: Promise<unknown> = Promise.resolve();
  /** Readings asked for and not yet settled. */
  private pending = 0;

  constructor(private readonly options: RedisDataLossWatchOptions) {}

  /**
   * Reads the marker through `client` (writing it when there is none), after any reading under
   * way. Resolves with the loss found, if any; a failed reading resolves undefined and changes
   * nothing (the connection's own error handling says why), the next one tells.
   */
  check(client: RedisClient, on: MarkerReadCause = 'asked'): Promise<RedisDataLoss | undefined> {
    this.pending += 1;
    const reading = this.queue.then(() => this.read(client, on));
    const settled = reading.catch(() => undefined).finally(() => (this.pending -= 1));
    this.queue = settled;
    return settled;
  }

  /**
   * Checks each time `client` is ready (now if it is): its first connection records the marker,
   * each reconnect compares; and every intervalMs while it is ready, as a flush drops no
   * connection. Returns a function that stops it.
   */
  watchConnection(client: RedisClient): () => void {
    const onReady = () => void this.check(client, 'ready');
    client.on('ready', onReady);
    if (client.status === 'ready') onReady();
    // A connection that is down is the reconnect's business, and a reading still under way (one
    // queued on a connection that waits for Redis) is not doubled.
    const timer = setInterval(() => {
      if (client.status === 'ready' && this.pending === 0) void this.check(client, 'interval');
    }, this.options.intervalMs ?? DEFAULT_MARKER_CHECK_INTERVAL_MS);
    timer.unref();
    return () => {
      clearInterval(timer);
      client.off('ready', onReady);
    };
  }

  private async read(client: RedisClient, on: MarkerReadCause): Promise<RedisDataLoss | undefined> {
    const key = redisMarkerKey(this.options.prefix);
    // GET first: a Redis at maxmemory refuses SET (even NX on a key it has), not GET.
    let found = await client.get(key);
    let wrote = false;
    if (found === null) {
      const mine = markerValue(randomUUID(), await redisTimeMs(client, key));
      wrote = (await client.set(key, mine, 'NX')) === 'OK';
      found = wrote ? mine : await client.get(key);
      if (found === null) return undefined; // gone again at once (a flush under way): the next reading tells
    }
    const before = this.marker;
    this.marker = found;
    if (before === undefined || before === found) {
      this.options.logger.debug('redis marker read', { key, marker: wrote ? 'written' : 'kept', first: before === undefined, on });
      return undefined;
    }
    const at = writtenAt(found);
    const loss: RedisDataLoss = {
      redis: serverAddressOfKey(client, key) ?? 'unknown',
      key,
      marker: wrote ? 'missing' : 'replaced',
      ...(at ? { markerWrittenAt: at } : {}),
    };
    this.options.logger.error('redis lost bullpen data', { ...loss, prefix: this.options.prefix, on, error: redisDataLossMessage(key, loss) });
    try {
      this.options.onLoss?.(loss);
    } catch (err) {
      this.options.logger.error('a redis data loss listener threw', { error: (err as Error)?.message ?? String(err) });
    }
    return loss;
  }
}
