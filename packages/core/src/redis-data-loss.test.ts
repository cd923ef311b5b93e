import IORedis from 'ioredis';
import { cleanupPrefix } from '../../../test/support/config';
import { redisUrl, testPrefix, waitUntil } from '../../../test/support/wait';
import { redisMarkerKey } from './keys';
import { createLogger } from './logger';
import { captureLogs } from '../../../test/support/logs';
import { RedisDataLossWatch, type RedisDataLoss } from './redis-data-loss';

function capture() {
  const logger = createLogger('api', 'info');
  return { logger, lines: captureLogs(logger) };
}

describe('RedisDataLossWatch', () => {
  const prefix = testPrefix('data-loss');
  const key = redisMarkerKey(prefix);
  let redis: IORedis;

  beforeAll(() => {
    redis = new IORedis(redisUrl());
  });
  beforeEach(() => cleanupPrefix(prefix));
  afterAll(async () => {
    await cleanupPrefix(prefix);
    await redis.quit();
  });

  function watch() {
    const { logger, lines } = capture();
    const losses: RedisDataLoss[] = [];
    const w = new RedisDataLossWatch({ prefix, logger, onLoss: (loss) => losses.push(loss) });
    return { w, lines, losses, errors: () => lines.filter((l) => l.level === 'error') };
  }

  it('writes the marker once and finds nothing lost while Redis keeps it', async () => {
    const a = watch();
    const b = watch();
    expect(await a.w.check(redis)).toBeUndefined();
    const marker = await redis.get(key);
    // A random id and when it was written, by Redis's clock.
    expect(marker).toMatch(/^[0-9a-f-]{36}@\d{13}$/);
    expect(Math.abs(Number(marker!.split('@')[1]) - Date.now())).toBeLessThan(60_000);
    for (let i = 0; i < 3; i += 1) {
      expect(await a.w.check(redis)).toBeUndefined();
      expect(await b.w.check(redis)).toBeUndefined();
    }
    expect(await redis.get(key)).toBe(marker);
    expect([...a.errors(), ...b.errors()]).toEqual([]);
    expect([...a.losses, ...b.losses]).toEqual([]);
  });

  it('says once per process that Redis lost the data when the marker is gone, whoever writes the new one', async () => {
    const a = watch();
    const b = watch();
    await a.w.check(redis);
    await b.w.check(redis);
    await redis.del(key); // as a flush or an empty restart leaves it (other tests share this Redis)

    // Readings at once in one process (the exporter's reconnect and a lane found empty) say it once.
    const [first, second] = await Promise.all([a.w.check(redis), a.w.check(redis)]);
    expect(first).toEqual({ redis: expect.stringMatching(/:\d+$/), key, marker: 'missing', markerWrittenAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });
    expect(second).toBeUndefined();
    expect(await b.w.check(redis)).toEqual({ redis: first!.redis, key, marker: 'replaced', markerWrittenAt: first!.markerWrittenAt });
    expect(await b.w.check(redis)).toBeUndefined();

    for (const p of [a, b]) {
      expect(p.losses).toHaveLength(1);
      expect(p.errors()).toHaveLength(1);
      expect(p.errors()[0]).toMatchObject({ msg: 'redis lost bullpen data', key, prefix });
      expect(String(p.errors()[0]!.error)).toMatch(/Redis lost bullpen's data.*acknowledged before may be gone.*appendonly yes/);
    }
    // Each says what it found: the one that wrote the new marker found it gone, the other replaced.
    expect(String(a.errors()[0]!.error)).toContain(`the marker ${key} that bullpen wrote to it is gone.`);
    expect(String(b.errors()[0]!.error)).toContain(
      `the marker ${key} that bullpen wrote to it was replaced: another bullpen process found it gone and wrote a new one at ${first!.markerWrittenAt}`,
    );
    expect(String(b.errors()[0]!.error)).not.toContain('is gone');
  });

  it('reads the marker on its interval while the connection stays up, so a flush is said without a reconnect, once', async () => {
    const logger = createLogger('api', 'debug');
    const lines = captureLogs(logger);
    const losses: RedisDataLoss[] = [];
    const w = new RedisDataLossWatch({ prefix, logger, intervalMs: 50, onLoss: (loss) => losses.push(loss) });
    const reads = () => lines.filter((l) => l.msg === 'redis marker read').length;
    const client = new IORedis(redisUrl());
    await client.ping();
    const stop = w.watchConnection(client);
    try {
      await waitUntil(() => reads() >= 2, { what: 'the first readings' });
      await redis.del(key); // as a flush leaves it, the connection untouched
      await waitUntil(() => losses.length === 1, { what: 'an interval reading to find the marker gone' });
      expect(losses[0]).toMatchObject({ key, marker: 'missing' });
      expect(lines.find((l) => l.msg === 'redis lost bullpen data')).toMatchObject({ on: 'interval' });
      // Later readings find the marker it wrote: nothing more to say.
      const after = reads();
      await waitUntil(() => reads() >= after + 3, { what: 'more interval readings' });
      expect(losses).toHaveLength(1);
      expect(lines.filter((l) => l.msg === 'redis marker read').every((l) => l.on === 'ready' || l.on === 'interval')).toBe(true);
    } finally {
      stop();
      client.disconnect();
    }
  });

  it('tells nothing from a reading that failed, and the next one tells', async () => {
    const a = watch();
    await a.w.check(redis);
    const down = new IORedis(1, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
    down.on('error', () => undefined);
    await redis.del(key);
    expect(await a.w.check(down)).toBeUndefined();
    expect(a.losses).toEqual([]);
    expect(await a.w.check(redis)).toMatchObject({ marker: 'missing' });
    down.disconnect();
  });
});
