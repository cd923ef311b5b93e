import IORedis from 'ioredis';
import { createLogger, EvictionPolicyWatch } from '@bullpen/core';
import { RedisMemoryWatch } from './redis-memory-watch';
import { startRedis, type RedisProcess } from '../../../test/support/redis-server';
import { testPrefix, waitUntil } from '../../../test/support/wait';

describe('RedisMemoryWatch', () => {
  let server: RedisProcess;
  let redis: IORedis;
  let watch: RedisMemoryWatch | undefined;

  beforeAll(async () => {
    // A server of its own: the test lowers its maxmemory.
    server = await startRedis(['--maxmemory', '1gb']);
    redis = new IORedis(server.url);
  });
  afterAll(async () => {
    jest.restoreAllMocks();
    await watch?.close();
    redis.disconnect();
    await server.stop();
  });

  it('keeps taking readings as submissions come when the wall clock steps back', async () => {
    watch = new RedisMemoryWatch(redis, testPrefix('memory-watch'), 0.9, new EvictionPolicyWatch(createLogger('api', 'error')));
    await redis.ping(); // connected first: the watch's first reading is not queued behind a connect
    await watch.start();
    expect(watch.check('lane')).toBeUndefined();
    // NTP steps the API host's clock back a minute, then Redis fills up (here: its limit drops to
    // just above what it uses).
    const realNow = Date.now.bind(Date);
    jest.spyOn(Date, 'now').mockImplementation(() => realNow() - 60_000);
    const used = Number(/used_memory:(\d+)/.exec(await redis.info('memory'))?.[1]);
    await redis.config('SET', 'maxmemory', String(Math.ceil(used * 1.02)));
    // A reading older than REFRESH_MS is refreshed by the next submission's check: the full Redis
    // is seen within moments, not after the minute the clock went back.
    const past = await waitUntil(() => watch!.check('lane'), { what: 'the memory past the limit to be seen', timeoutMs: 5000 });
    expect(past.ratio).toBeGreaterThan(0.9);
  });
});
