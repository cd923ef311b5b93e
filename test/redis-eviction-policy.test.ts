// A Redis whose maxmemory-policy evicts keys (allkeys-lru on a Redis shared with a cache, the
// volatile-lru of some managed Redis). At maxmemory it deletes keys to make room, jobs the API
// acknowledged among them, and nothing in Redis says so: each app must say it in its log, with the
// fix, at start and when the policy changes; the API's readiness must say it; and a job whose hash
// was evicted must fail as data lost, not as a job of an unknown name.
import IORedis from 'ioredis';
import { z } from 'zod';
import { createLogger } from '@bullpen/core';
import { defineHandler } from '../apps/worker/src/handler';
import { HandlerRegistry } from '../apps/worker/src/registry';
import { WorkerRuntime } from '../apps/worker/src/runtime';
import { startTestApi, type TestApi } from '../apps/api/test/harness';
import { writeLanesFile } from './fixtures/worker-process';
import { spawnApi, spawnExporter, spawnWorkerApp, type AppProcess } from './support/prometheus';
import { removeDir, startRedis, type RedisProcess } from './support/redis-server';
import { testPrefix, waitUntil } from './support/wait';

const KEY = 'eviction-key';
const MiB = 1024 * 1024;

/** The error lines an app logged for an evicting policy, with the policy each names. */
const evictionErrors = (app: AppProcess) =>
  app.logs().filter((l) => l.msg === 'redis may evict jobs' && l.level === 'error') as Array<{ maxmemory_policy: string; error: string }>;

describe('bullpen on a Redis whose maxmemory-policy evicts keys', () => {
  let redis: RedisProcess;
  let admin: IORedis;
  const apps: AppProcess[] = [];
  let api: TestApi | undefined;
  let runtime: WorkerRuntime | undefined;
  const lanesFile = writeLanesFile({ lanes: { work: { concurrency: 4 } } });

  beforeEach(async () => {
    // maxmemory-samples 10: Redis's LRU approximation close enough to true LRU that what it evicts
    // first is what was touched longest ago.
    redis = await startRedis(['--maxmemory', '50mb', '--maxmemory-policy', 'allkeys-lru', '--maxmemory-samples', '10']);
    admin = new IORedis(redis.url);
  });

  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.kill('SIGKILL')));
    await runtime?.close(5000);
    runtime = undefined;
    await api?.stop();
    api = undefined;
    admin.disconnect();
    await redis.stop();
    removeDir(redis.dir);
  });

  afterAll(() => lanesFile.cleanup());

  it('makes every app log the policy and its fix at start and when it changes, and the API warn in /readyz while staying ready', async () => {
    const env = {
      REDIS_URL: redis.url,
      BULLPEN_PREFIX: testPrefix('evict'),
      LANES_FILE: lanesFile.file,
      API_KEYS: `acme:${KEY}`,
      EXPORTER_LEADER_LEASE_MS: '1000',
    };
    const [apiApp, worker, exporter] = await Promise.all([spawnApi(env), spawnWorkerApp(env), spawnExporter(env)]);
    apps.push(apiApp, worker, exporter);
    for (const app of [apiApp, worker, exporter]) {
      await waitUntil(() => evictionErrors(app).length > 0, { what: 'the app to log the evicting policy' });
      const [line] = evictionErrors(app);
      expect(line!.maxmemory_policy).toBe('allkeys-lru');
      expect(line!.error).toMatch(/allkeys-lru.*may lose jobs.*CONFIG SET maxmemory-policy noeviction/);
    }

    // Still in service (Redis takes and keeps jobs until it is full), but saying why it may lose them.
    const ready = await fetch(`${apiApp.url}/readyz`);
    expect(ready.status).toBe(200);
    const body = (await ready.json()) as { status: string; warnings?: string[] };
    expect(body.status).toBe('ready');
    expect(body.warnings?.[0]).toMatch(/allkeys-lru.*CONFIG SET maxmemory-policy noeviction/);

    // Readings that find the same policy log nothing more: submissions, scrapes.
    const submit = () =>
      fetch(`${apiApp.url}/v1/lanes/work/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'noop' }),
      });
    for (let i = 0; i < 3; i++) {
      expect((await submit()).status).toBe(201);
      await exporter.scrape();
    }
    expect(evictionErrors(apiApp)).toHaveLength(1);
    expect(evictionErrors(exporter)).toHaveLength(1);
    expect(evictionErrors(worker)).toHaveLength(1);

    // Someone changes the policy to another evicting one: the next readings say so.
    await admin.config('SET', 'maxmemory-policy', 'volatile-lru');
    await waitUntil(
      async () => {
        await exporter.scrape();
        return evictionErrors(exporter).some((l) => l.maxmemory_policy === 'volatile-lru');
      },
      { what: 'the exporter to log the new policy' },
    );
    await waitUntil(
      async () => {
        await submit();
        return evictionErrors(apiApp).some((l) => l.maxmemory_policy === 'volatile-lru');
      },
      { what: 'the API to log the new policy' },
    );
    // The worker reads it when its connection is ready again.
    const list = String(await admin.client('LIST'));
    const adminId = /id=(\d+) .*name=bullpen:worker:admin/.exec(list)?.[1];
    expect(adminId).toBeDefined();
    await admin.client('KILL', 'ID', adminId!);
    await waitUntil(() => evictionErrors(worker).some((l) => l.maxmemory_policy === 'volatile-lru'), {
      what: 'the worker to log the new policy',
    });

    // Fixed: the warning goes, and nothing more is logged as an error.
    await admin.config('SET', 'maxmemory-policy', 'noeviction');
    await waitUntil(
      async () => {
        await submit();
        return ((await (await fetch(`${apiApp.url}/readyz`)).json()) as { warnings?: string[] }).warnings === undefined;
      },
      { what: 'the API to read the fixed policy' },
    );
    expect(evictionErrors(apiApp)).toHaveLength(2);
  }, 90_000);

  it('names the evicting policy in a redis_full refusal', async () => {
    api = await startTestApi({ env: { REDIS_URL: redis.url } });
    // A cache sharing the Redis keeps it at maxmemory: LRU eviction holds it there for good.
    await admin.config('SET', 'maxmemory', String(8 * MiB));
    for (let i = 0; i < 100; i++) await admin.set(`cache:${i}`, 'y'.repeat(128 * 1024));
    // Far from the limit at the last reading, a submission is judged by it and starts another.
    const reply = await waitUntil(
      async () => {
        const answer = await api!.request('POST', '/v1/lanes/critic/jobs', { body: { name: 'noop' } });
        return answer.status === 201 ? undefined : answer;
      },
      { what: 'a submission to be refused' },
    );
    expect(reply.status).toBe(503);
    expect(reply.body.code).toBe('redis_full');
    expect(reply.body.detail).toMatch(/API_REDIS_MEMORY_LIMIT.*maxmemory-policy is allkeys-lru.*CONFIG SET maxmemory-policy noeviction/);
  });

  it('fails a job whose hash Redis evicted as data lost, not as a job no handler is registered for', async () => {
    const lanes = { lanes: { work: { concurrency: 4 }, critic: { concurrency: 1 } } };
    api = await startTestApi({ lanesFile: lanes, env: { REDIS_URL: redis.url } });
    const jobs = 200;
    const reply = await api.request('POST', '/v1/lanes/work/jobs/bulk', {
      body: { jobs: Array.from({ length: jobs }, (_, i) => ({ name: 'blob', data: { i, pad: 'x'.repeat(4 * 1024) } })) },
    });
    expect(reply.body.created).toBe(jobs);
    // Another application writes to the shared Redis past its maxmemory: Redis evicts what was
    // touched longest ago. Its clock counts seconds: once the job hashes are a second old, the
    // lane's other keys (its wait list, its metadata) are touched, so that the job hashes go first.
    const jobKey = (id: string) => `${api!.config.prefix}:{work}:work:${id}`;
    const ids = (reply.body.results as Array<{ id: string }>).map((r) => r.id);
    await waitUntil(async () => Number(await admin.object('IDLETIME', jobKey(ids[0]!))) >= 1, { what: 'the job hashes to age' });
    const laneKeys = (await admin.keys(`${api.config.prefix}:*`)).filter((key) => !/:[0-9a-f-]{36}$/.test(key));
    await admin.touch(...laneKeys);
    const wait = `${api.config.prefix}:{work}:work:wait`;
    const evicted = async () => Number(/evicted_keys:(\d+)/.exec(await admin.info('stats'))?.[1] ?? 0);
    await admin.config('SET', 'maxmemory', String(Number(/used_memory:(\d+)/.exec(await admin.info('memory'))?.[1]) - MiB / 4));
    for (let i = 0; (await evicted()) < 20; i++) {
      expect(await admin.llen(wait)).toBe(jobs);
      await admin.set(`cache:${i}`, 'y'.repeat(64 * 1024));
    }
    // The cache shrinks again: the workers' own writes evict nothing more.
    await admin.config('SET', 'maxmemory', String(50 * MiB));

    const blob = defineHandler({ name: 'blob', payload: z.object({ i: z.number(), pad: z.string() }), run: ({ i }) => ({ i }) });
    const registry = new HandlerRegistry().register(blob);
    runtime = new WorkerRuntime({ config: api.config, logger: createLogger('worker', 'error'), registry });
    await runtime.start();
    const failed = `${api.config.prefix}:{work}:work:failed`;
    const active = `${api.config.prefix}:{work}:work:active`;
    await waitUntil(async () => (await admin.llen(wait)) + (await admin.llen(active)) === 0 || undefined, {
      what: 'every job to end',
      timeoutMs: 30_000,
    });
    // The jobs whose hash is left ran; the others failed, each saying its data is gone.
    const failedIds = await admin.zrange(failed, 0, -1);
    expect(failedIds.length).toBeGreaterThan(0);
    expect(failedIds.length).toBeLessThan(jobs);
    for (const id of failedIds) {
      const reason = await admin.hget(jobKey(id), 'failedReason');
      expect(reason).toMatch(/has no name or data in Redis: its hash was lost, most likely evicted/);
    }
  }, 60_000);
});
