// A worker whose Redis restarts without its data (no persistence, or a failover to an empty
// replica): what the lanes file puts in Redis must come back with the connection, or a lane's
// cluster-wide cap would silently stop binding the replicas.
import { laneRegistryKey } from '@bullpen/core';
import { startWorkerHarness, type WorkerHarness } from './fixtures/worker-harness';
import { removeDir, startRedis, type RedisProcess } from './support/redis-server';
import { waitUntil } from './support/wait';

describe('a worker whose Redis restarts empty', () => {
  let redis: RedisProcess | undefined;
  let harness: WorkerHarness | undefined;

  afterEach(async () => {
    await harness?.close();
    await redis?.stop();
    if (redis) removeDir(redis.dir);
    harness = redis = undefined;
  });

  it("puts each lane's global concurrency cap and the lane registry back once it reconnects", async () => {
    redis = await startRedis();
    harness = await startWorkerHarness({
      lanesFile: { lanes: { capped: { concurrency: 4, globalConcurrency: 1 }, free: { concurrency: 2 } } },
      env: { REDIS_URL: redis.url },
    });
    const h = harness;
    const capped = h.queue('capped');
    expect(await capped.getGlobalConcurrency()).toBe(1);

    await redis.restart();
    await waitUntil(async () => (await capped.getGlobalConcurrency().catch(() => null)) === 1, {
      timeoutMs: 20_000,
      what: "the capped lane's global concurrency to be restored",
    });
    expect(await h.queue('free').getGlobalConcurrency()).toBeNull();
    expect((await h.redis.smembers(laneRegistryKey(h.config.prefix))).sort()).toEqual(['capped', 'free']);
  });
});
