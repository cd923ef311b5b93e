// A Redis that fills up. At maxmemory Redis refuses the writes that add jobs and also those that
// take and finish them, so the API stops taking jobs short of it (API_REDIS_MEMORY_LIMIT) and the
// workers keep room to drain the lane. A write Redis refuses for memory anyway is answered 503
// redis_full, not 500: Redis refuses before it changes anything, so nothing was enqueued. Each
// test runs its own redis-server, whose maxmemory it sets.
import { createLogger } from '@bullpen/core';
import IORedis from 'ioredis';
import { LaneRegistry } from '../apps/api/src/lane-registry';
import { JobProducer } from '../apps/api/src/producer';
import { RedisGuard } from '../apps/api/src/redis-guard';
import { builtinHandlers } from '../apps/worker/src/handlers';
import { HandlerRegistry } from '../apps/worker/src/registry';
import { WorkerRuntime } from '../apps/worker/src/runtime';
import { startTestApi, type Reply, type TestApi } from '../apps/api/test/harness';
import { parseExposition } from './support/prometheus';
import { removeDir, startRedis, type RedisProcess } from './support/redis-server';
import { waitUntil } from './support/wait';

const LANE = 'fill';
const MiB = 1024 * 1024;
/** Completed jobs are not kept, so that a drained lane gives its memory back. */
const lanesFile = {
  lanes: {
    [LANE]: {
      concurrency: 16,
      maxQueueSize: 1_000_000,
      retention: { completed: { ageSeconds: 60, count: 0 }, failed: { ageSeconds: 60, count: 0 } },
    },
    critic: { concurrency: 1 }, // the harness's keys name it
  },
};

async function info(redis: IORedis, section: string, field: string): Promise<number> {
  const match = new RegExp(`^${field}:(?:count=)?(\\d+)`, 'm').exec(await redis.info(section));
  return match ? Number(match[1]) : 0;
}

/** How many commands Redis has refused for memory since it started. */
const oomRefusals = (redis: IORedis) => info(redis, 'errorstats', 'errorstat_OOM');

async function rejectedForMemory(api: TestApi): Promise<number> {
  const samples = parseExposition(String((await api.request('GET', '/metrics', { key: null })).body));
  const sample = samples.find(
    (s) => s.name === 'bullpen_api_admission_rejected_total' && s.labels.lane === LANE && s.labels.reason === 'redis_full',
  );
  return sample?.value ?? 0;
}

function expectRedisFull(reply: Reply): void {
  expect(reply.status).toBe(503);
  expect(reply.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  expect(reply.body.code).toBe('redis_full');
  expect(reply.headers.get('retry-after')).toBe('5');
}

describe('producer API: a Redis that fills up', () => {
  let redis: RedisProcess;
  let api: TestApi | undefined;
  let runtime: WorkerRuntime | undefined;

  /** The test's own connection, for setting Redis up before the API starts. */
  let admin: IORedis;

  beforeEach(async () => {
    redis = await startRedis();
    admin = new IORedis(redis.url);
  });

  /** Writes 256 KiB values under `prefix` until Redis holds `share` of `maxBytes`. */
  const fillTo = async (share: number, maxBytes: number, prefix: string) => {
    for (let i = 0; (await info(admin, 'memory', 'used_memory')) < share * maxBytes; i++) {
      await admin.set(`${prefix}:${i}`, 'x'.repeat(256 * 1024));
    }
  };
  /** Gives Redis a maxmemory of what it holds plus 32 MiB, and returns it. */
  const limitMemory = async () => {
    const maxBytes = (await info(admin, 'memory', 'used_memory')) + 32 * MiB;
    await admin.config('SET', 'maxmemory', String(maxBytes));
    return maxBytes;
  };

  afterEach(async () => {
    await runtime?.close(5000);
    runtime = undefined;
    await api?.stop();
    api = undefined;
    admin.disconnect();
    await redis.stop();
    removeDir(redis.dir);
  });

  const bulk = (target: TestApi, tag: number) =>
    target.request('POST', `/v1/lanes/${LANE}/jobs/bulk`, {
      body: { jobs: Array.from({ length: 200 }, (_, i) => ({ name: 'noop', data: { tag, i, pad: 'x'.repeat(2048) } })) },
    });

  it('refuses new jobs short of maxmemory, so that workers can still drain the lane, then takes them again', async () => {
    api = await startTestApi({ lanesFile, env: { REDIS_URL: redis.url } });
    // Room for about 50 bulks of these jobs: each takes about 2% of it.
    await api.redis.config('SET', 'maxmemory', String((await info(api.redis, 'memory', 'used_memory')) + 32 * MiB));

    let created = 0;
    let refused: Reply | undefined;
    for (let tag = 0; !refused; tag++) {
      expect(tag).toBeLessThan(100);
      const reply = await bulk(api, tag);
      if (reply.status === 200) created += reply.body.created;
      else refused = reply;
    }
    expectRedisFull(refused);
    expect(refused.body.detail).toMatch(/API_REDIS_MEMORY_LIMIT/);
    expectRedisFull(await api.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop' } }));
    // Nothing of the refused submissions landed, and Redis itself never had to refuse a write.
    expect(await api.backlog(LANE)).toBe(created);
    expect(await oomRefusals(api.redis)).toBe(0);
    expect(await rejectedForMemory(api)).toBe(201);

    // The room left over is enough for workers to take every job and record its end.
    const registry = new HandlerRegistry().registerAll(builtinHandlers());
    runtime = new WorkerRuntime({ config: api.config, logger: createLogger('worker', 'error'), registry });
    await runtime.start();
    const done = await waitUntil(
      async () => {
        const reply = await api!.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop' } });
        return reply.status === 201 ? reply : undefined;
      },
      { what: 'the lane to drain and submissions to be taken again', timeoutMs: 60_000 },
    );
    expect(done.body.state).toBe('waiting');
    await waitUntil(async () => (await api!.backlog(LANE)) === 0, { what: 'the lane to drain', timeoutMs: 60_000 });
    expect(await oomRefusals(api.redis)).toBe(0);
  });

  it('refuses the very first submission of an API started against a Redis already past the limit', async () => {
    await fillTo(0.95, await limitMemory(), 'ballast');
    // The API takes its first reading before it listens.
    api = await startTestApi({ lanesFile, env: { REDIS_URL: redis.url } });
    const first = await bulk(api, 0);
    expectRedisFull(first);
    expect(first.body.detail).toMatch(/API_REDIS_MEMORY_LIMIT/);
    // A producer whose watch has no reading yet waits for one rather than admitting on none.
    const { config, producer: redisClient } = api;
    const lanes = new LaneRegistry(config, redisClient, createLogger('api', 'error'));
    const producer = new JobProducer({ config, redis: redisClient, guard: new RedisGuard(redisClient), lanes });
    try {
      const submitted = producer.submit({ lane: LANE, policy: config.lanes[LANE]! }, 'acme', { name: 'noop', data: {} });
      await expect(submitted).rejects.toMatchObject({ code: 'redis_full' });
    } finally {
      await lanes.close();
    }
    expect(await api.backlog(LANE)).toBe(0);
    expect(await oomRefusals(api.redis)).toBe(0);
  });

  it('judges a submission near the limit by what Redis holds when it arrives, not by a reading taken before', async () => {
    const maxBytes = await limitMemory();
    // 85% full: near the limit (within 10% of it), but under it; the API's first reading sees it.
    await fillTo(0.85, maxBytes, 'ballast:a');
    api = await startTestApi({ lanesFile, env: { REDIS_URL: redis.url } });
    const submit = () => api!.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop' } });
    expect((await submit()).status).toBe(201);
    expect((await submit()).status).toBe(201); // taken on a reading of 85%
    // Someone else (another API, a script) fills Redis to 95% at once; the next submission must see it.
    await fillTo(0.95, maxBytes, 'ballast:b');
    expectRedisFull(await submit());
    await api.redis.del(...(await api.redis.keys('ballast:b:*')));
    expect((await submit()).status).toBe(201);
    expect(await oomRefusals(api.redis)).toBe(0);
  });

  it('reads Redis again before a submission whose bytes may use the room left under the limit, however recent the last reading', async () => {
    const maxBytes = await limitMemory();
    // 75% full, 5% under where submissions start to wait for fresh readings (80%); the API's
    // first reading sees it.
    await fillTo(0.75, maxBytes, 'ballast:a');
    api = await startTestApi({ lanesFile, env: { REDIS_URL: redis.url } });
    const small = () => api!.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop' } });
    expect((await small()).status).toBe(201);
    expect((await small()).status).toBe(201); // taken on a reading of 75%
    const backlog = await api.backlog(LANE);
    // Someone else fills Redis to 95% at once. A bulk of about 0.9 MiB, which alone could take
    // more than the 1.6 MiB left under 80% at the last reading, must not go on that reading.
    await fillTo(0.95, maxBytes, 'ballast:b');
    const jobs = Array.from({ length: 100 }, (_, i) => ({ name: 'noop', data: { i, pad: 'x'.repeat(9000) } }));
    const reply = await api.request('POST', `/v1/lanes/${LANE}/jobs/bulk`, { body: { jobs } });
    expectRedisFull(reply);
    expect(reply.body.detail).toMatch(/API_REDIS_MEMORY_LIMIT/);
    expect(await api.backlog(LANE)).toBe(backlog);
    expect(await oomRefusals(api.redis)).toBe(0);
  });

  it('answers 503 redis_full, not 500, when Redis itself refuses the jobs, and enqueues none of them', async () => {
    // The API's own check off: Redis refuses at maxmemory.
    api = await startTestApi({ lanesFile, env: { REDIS_URL: redis.url, API_REDIS_MEMORY_LIMIT: '1' } });
    expect((await api.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop' } })).status).toBe(201);
    expect((await bulk(api, 0)).status).toBe(200);
    await api.redis.config('SET', 'maxmemory', '1');

    expectRedisFull(await api.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop' } }));
    const refusedBulk = await bulk(api, 1);
    expectRedisFull(refusedBulk);
    expect(refusedBulk.body.detail).toMatch(/nothing was enqueued/);
    expect(await oomRefusals(api.redis)).toBeGreaterThan(0);
    expect(await api.backlog(LANE)).toBe(201);
    expect(await rejectedForMemory(api)).toBe(201);

    await api.redis.config('SET', 'maxmemory', '0');
    expect((await api.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop' } })).status).toBe(201);
  });
});
