// A lane renamed or dropped from the lanes file while jobs were in it: nothing serves those jobs
// and, before, nothing showed them either. Every app records the lanes it is configured with in
// Redis; the exporter reports jobs in a recorded lane its own lanes file does not name, until
// they are gone, and says so in its log.
import IORedis from 'ioredis';
import { laneRegistryKey } from '@bullpen/core';
import { writeLanesFile } from './fixtures/worker-process';
import { cleanupPrefix } from './support/config';
import { spawnApi, spawnExporter, spawnWorkerApp, type AppProcess } from './support/prometheus';
import { redisUrl, testPrefix, waitUntil } from './support/wait';

const KEY = 'lanes-key';

describe('jobs left in a lane the lanes file no longer names', () => {
  const before = writeLanesFile({ lanes: { work: { concurrency: 2 }, old: { concurrency: 2 } } });
  const after = writeLanesFile({ lanes: { work: { concurrency: 2 } } });
  const prefix = testPrefix('unconfigured');
  const apps: AppProcess[] = [];
  let redis: IORedis;

  beforeAll(() => {
    redis = new IORedis(redisUrl());
  });

  afterAll(async () => {
    await Promise.all(apps.map((app) => app.kill('SIGKILL')));
    await cleanupPrefix(prefix);
    redis.disconnect();
    before.cleanup();
    after.cleanup();
  });

  const env = (lanesFile: string) => ({ REDIS_URL: redisUrl(), BULLPEN_PREFIX: prefix, LANES_FILE: lanesFile, API_KEYS: `acme:${KEY}` });
  const unconfigured = async (exporter: AppProcess) =>
    (await exporter.samples())
      .filter((s) => s.name === 'bullpen_unconfigured_lane_jobs')
      .map((s) => ({ lane: s.labels.lane, state: s.labels.state, value: s.value }));

  it('are shown by the exporter until a worker finishes them', async () => {
    // The API of the old lanes file takes jobs into lane old, which nothing serves yet.
    const api = await spawnApi(env(before.file));
    apps.push(api);
    for (const body of [{ name: 'noop' }, { name: 'noop' }, { name: 'noop', delayMs: 1000 }]) {
      const res = await fetch(`${api.url}/v1/lanes/old/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(201);
    }
    expect((await redis.smembers(laneRegistryKey(prefix))).sort()).toEqual(['old', 'work']);

    // An exporter of the new lanes file, without lane old.
    const exporter = await spawnExporter(env(after.file));
    apps.push(exporter);
    const series = await unconfigured(exporter);
    expect(series).toEqual(
      expect.arrayContaining([
        { lane: 'old', state: 'waiting', value: 2 },
        { lane: 'old', state: 'delayed', value: 1 },
        { lane: 'old', state: 'failed', value: 0 },
      ]),
    );
    expect(series.every((s) => s.lane === 'old' && s.state !== 'completed')).toBe(true);
    // The lane metrics proper still cover only the configured lanes.
    expect((await exporter.samples()).some((s) => s.name === 'bullpen_queue_jobs' && s.labels.lane === 'old')).toBe(false);
    const warnings = exporter.logs().filter((l) => l.lane === 'old' && l.level === 'warn');
    expect(warnings).toEqual([expect.objectContaining({ msg: expect.stringMatching(/lane old holds jobs but is not in LANES_FILE/), jobs: { waiting: 2, delayed: 1 } })]);

    // A worker that still serves lane old finishes them; the lane's series go away.
    const worker = await spawnWorkerApp({ ...env(before.file), WORKER_LANES: 'old' });
    apps.push(worker);
    await waitUntil(async () => (await unconfigured(exporter)).length === 0, { timeoutMs: 30_000, what: 'lane old to be emptied' });
    // Scraped again and again, the warning is not repeated.
    expect(exporter.logs().filter((l) => l.lane === 'old' && l.level === 'warn')).toHaveLength(1);
  }, 90_000);

  it('records the lanes of a worker and of the exporter too', async () => {
    const own = testPrefix('registry');
    try {
      const worker = await spawnWorkerApp({ ...env(before.file), BULLPEN_PREFIX: own, WORKER_LANES: 'old' });
      apps.push(worker);
      expect(await redis.smembers(laneRegistryKey(own))).toEqual(['old']);
      const exporter = await spawnExporter({ ...env(after.file), BULLPEN_PREFIX: own });
      apps.push(exporter);
      await waitUntil(async () => (await redis.smembers(laneRegistryKey(own))).length === 2, { what: 'the exporter to record its lanes' });
      expect((await redis.smembers(laneRegistryKey(own))).sort()).toEqual(['old', 'work']);
    } finally {
      await cleanupPrefix(own);
    }
  }, 60_000);
});
