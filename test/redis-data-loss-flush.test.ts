// A flush of Redis (FLUSHALL, FLUSHDB) drops no connection: the API, the worker and the exporter,
// as real processes, must each find it by reading bullpen's marker every
// REDIS_MARKER_CHECK_INTERVAL_MS, say it once close to when it happened, and not say it again at
// a later reconnect that lost nothing. The worker puts a lane's cluster-wide cap back at once, or
// each replica would run the lane's full concurrency until its next reconnect.
import IORedis from 'ioredis';
import { laneStateKeys, redisMarkerKey } from '@bullpen/core';
import { writeLanesFile } from './fixtures/worker-process';
import { spawnApi, spawnExporter, spawnWorkerApp, total, type AppProcess } from './support/prometheus';
import { removeDir, startRedis, type RedisProcess } from './support/redis-server';
import { testPrefix, waitUntil } from './support/wait';

jest.setTimeout(120_000);

const KEY = 'data-loss-flush-key';
const LANE = 'capped';

const lossLines = (app: AppProcess) => app.logs().filter((l) => l.msg === 'redis lost bullpen data');
const markerReads = (app: AppProcess) => app.logs().filter((l) => l.msg === 'redis marker read').length;
const markerReadsOnReady = (app: AppProcess) => app.logs().filter((l) => l.msg === 'redis marker read' && l.on === 'ready').length;
const lostTotal = async (app: AppProcess) => total(await app.samples(), 'bullpen_redis_data_lost_total');
const serviceOf = (app: AppProcess) => String(app.logs()[0]?.service ?? 'app');

describe('Redis flushed under running apps', () => {
  let redis: RedisProcess;
  let admin: IORedis;
  const apps: AppProcess[] = [];
  // One worker may run 8 of the lane's jobs at once; the cluster-wide cap allows 1.
  const lanesFile = writeLanesFile({ lanes: { [LANE]: { concurrency: 8, globalConcurrency: 1 } } });

  beforeAll(async () => {
    redis = await startRedis();
    admin = new IORedis(redis.url);
  });

  afterAll(async () => {
    await Promise.all(apps.splice(0).map((app) => app.kill('SIGKILL')));
    admin?.disconnect();
    await redis.stop();
    removeDir(redis.dir);
    lanesFile.cleanup();
  });

  it('makes each app count a flush once within the check interval, restores the lane cap, and counts nothing at a later reconnect', async () => {
    const prefix = testPrefix('data-loss-flush');
    const keys = laneStateKeys(prefix, LANE);
    const env = {
      REDIS_URL: redis.url,
      BULLPEN_PREFIX: prefix,
      LANES_FILE: lanesFile.file,
      API_KEYS: `acme:${KEY}`,
      LOG_LEVEL: 'debug',
      REDIS_MARKER_CHECK_INTERVAL_MS: '300',
    };
    const started = await Promise.allSettled([spawnApi(env), spawnWorkerApp(env), spawnExporter(env)]);
    for (const s of started) if (s.status === 'fulfilled') apps.push(s.value);
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    const [api, worker] = apps as [AppProcess, AppProcess, AppProcess];
    const submit = async (data: unknown): Promise<string> => {
      const res = await fetch(`${api.url}/v1/lanes/${LANE}/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'sleep', data }),
      });
      expect(res.status).toBe(201);
      return String(((await res.json()) as { id: string }).id);
    };

    for (const app of apps) {
      await waitUntil(() => markerReads(app) >= 1, { what: `the ${serviceOf(app)} to read the marker at start` });
      expect(await lostTotal(app)).toBe(0);
    }
    expect(await admin.hget(keys.meta, 'concurrency')).toBe('1');
    const connections = async () => ((await admin.client('LIST')) as string).split('\n').filter(Boolean).length;
    const connectedBefore = await connections();

    // Someone flushes Redis: no connection drops, no job is submitted, no app reconnects.
    await admin.flushall();
    for (const app of apps) {
      await waitUntil(async () => (await lostTotal(app)) === 1, { what: `the ${serviceOf(app)} to count the flush` });
      const [line] = lossLines(app);
      expect(line).toMatchObject({ level: 'error', key: redisMarkerKey(prefix), on: 'interval', markerWrittenAt: expect.any(String) });
      // Found gone by the one that wrote the new marker, replaced by the others: each says which.
      const said = String(line!.error);
      if (line!.marker === 'replaced') expect(said).toMatch(/ was replaced: another bullpen process found it gone and wrote a new one at \d{4}-/);
      else expect(said).toMatch(/ is gone\. /);
      expect(markerReadsOnReady(app)).toBe(1);
    }
    expect(await connections()).toBe(connectedBefore);

    // The worker put the lane's cap back: the lane runs one job at a time again.
    await waitUntil(async () => (await admin.hget(keys.meta, 'concurrency')) === '1', { what: 'the worker to restore the lane cap' });
    const ids: string[] = [];
    for (let i = 0; i < 4; i += 1) ids.push(await submit({ ms: 200 }));
    await waitUntil(async () => (await admin.zcard(keys.completed)) === ids.length, { what: 'the jobs to complete' });
    const runs = await Promise.all(
      ids.map(async (id) => {
        const [processedOn, finishedOn] = await admin.hmget(`${keys.jobPrefix}${id}`, 'processedOn', 'finishedOn');
        return { start: Number(processedOn), end: Number(finishedOn) };
      }),
    );
    runs.sort((a, b) => a.start - b.start);
    for (let i = 1; i < runs.length; i += 1) expect(runs[i]!.start).toBeGreaterThanOrEqual(runs[i - 1]!.end);

    // Much later, every connection drops and comes back to a Redis that lost nothing: each app
    // reads the marker again on reconnect, finds the one it saw after the flush, and counts nothing.
    await admin.client('KILL', 'TYPE', 'normal');
    await admin.client('KILL', 'TYPE', 'pubsub');
    for (const app of apps) {
      await waitUntil(() => markerReadsOnReady(app) >= 2, { what: `the ${serviceOf(app)} to read the marker after reconnecting` });
    }
    // Readings on the interval after the reconnect too, then the counts are final.
    const readsNow = apps.map(markerReads);
    for (const [i, app] of apps.entries()) {
      await waitUntil(() => markerReads(app) >= readsNow[i]! + 2, {
        what: `the ${serviceOf(app)} to read the marker again on its interval`,
      });
    }
    for (const app of apps) {
      expect(lossLines(app)).toHaveLength(1);
      expect(await lostTotal(app)).toBe(1);
    }
  });
});
