// Tells that Redis lost bullpen's data: restarted without persistence, was flushed, or failed over
// to a replica that never had it. Redis answers as if nothing happened, and jobs it acknowledged
// are simply gone, so each process says so. The first process to reach a Redis writes a marker
// (a random id, once, SET NX); every process remembers the marker it first saw, and reads it again
// each time its connection is ready after a loss. Gone or replaced, it means the data it stood
// with is gone too. One GET per reconnect; no job costs a Redis call more.
import { randomUUID } from 'node:crypto';
import { redisMarkerKey } from './keys';
import type { Logger } from './logger';
import type { RedisClient } from './redis';
import { serverAddressOfKey } from './redis-memory';

/** What a process found when it read the marker again. */
export interface RedisDataLoss {
  /** The server that holds the marker (host:port, or the Sentinel master group). */
  redis: string;
  /** The marker's key. */
  key: string;
  /** `missing`: this process found no marker and wrote a new one; `replaced`: another process had. */
  marker: 'missing' | 'replaced';
}

export interface RedisDataLossWatchOptions {
  /** BULLPEN_PREFIX: the marker is `<prefix>:bp:marker` (keys.ts). */
  prefix: string;
  /** Where a loss is said, at error. */
  logger: Logger;
  /** Called once for each loss found, after it is logged (to count it). Default: nothing. */
  onLoss?: (loss: RedisDataLoss) => void;
}

/** What a loss means for bullpen's users, and what to check. */
export function redisDataLossMessage(key: string): string {
  return (
    `Redis lost bullpen's data: the marker ${key} that bullpen wrote to it is gone. Redis restarted without ` +
    'persistence, was flushed, or failed over to a replica that did not have the data. Jobs that bullpen ' +
    'acknowledged before may be gone (waiting, delayed and running jobs, their results, dead letters) and ' +
    'cannot be recovered from Redis; the exporter counts its totals again from 0. Check Redis persistence ' +
    '(appendonly yes), and what restarted or flushed it'
  );
}

export class RedisDataLossWatch {
  /** The marker as this process last saw it; undefined until a first reading succeeds. */
  private marker: string | undefined;
  /** Readings run one at a time, so that one loss seen by two at once is said once. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: RedisDataLossWatchOptions) {}

  /**
   * Reads the marker through `client` (writing it when there is none), after any reading under
   * way. Resolves with the loss found, if any; a failed reading resolves undefined and changes
   * nothing (the connection's own error handling says why), the next one tells.
   */
  check(client: RedisClient): Promise<RedisDataLoss | undefined> {
    const reading = this.queue.then(() => this.read(client));
    this.queue = reading.catch(() => undefined);
    return reading.catch(() => undefined);
  }

  /**
   * Checks each time `client` is ready (now if it is): its first connection records the marker,
   * each reconnect compares. Returns a function that stops it.
   */
  watchConnection(client: RedisClient): () => void {
    const onReady = () => void this.check(client);
    client.on('ready', onReady);
    if (client.status === 'ready') onReady();
    return () => client.off('ready', onReady);
  }

  private async read(client: RedisClient): Promise<RedisDataLoss | undefined> {
    const key = redisMarkerKey(this.options.prefix);
    // GET first: a Redis at maxmemory refuses SET (even NX on a key it has), not GET.
    let found = await client.get(key);
    let wrote = false;
    if (found === null) {
      const mine = randomUUID();
      wrote = (await client.set(key, mine, 'NX')) === 'OK';
      found = wrote ? mine : await client.get(key);
      if (found === null) return undefined; // gone again at once (a flush under way): the next reading tells
    }
    const before = this.marker;
    this.marker = found;
    if (before === undefined || before === found) {
      this.options.logger.debug('redis marker read', { key, marker: wrote ? 'written' : 'kept', first: before === undefined });
      return undefined;
    }
    const loss: RedisDataLoss = { redis: serverAddressOfKey(client, key) ?? 'unknown', key, marker: wrote ? 'missing' : 'replaced' };
    this.options.logger.error('redis lost bullpen data', { ...loss, prefix: this.options.prefix, error: redisDataLossMessage(key) });
    try {
      this.options.onLoss?.(loss);
    } catch (err) {
      this.options.logger.error('a redis data loss listener threw', { error: (err as Error)?.message ?? String(err) });
    }
    return loss;
  }
}
