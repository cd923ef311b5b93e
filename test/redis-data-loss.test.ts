// Redis that comes back without bullpen's data (restarted without persistence, flushed, failed
// over to an empty replica) answers as if nothing happened: jobs it acknowledged are simply gone.
// The API, the worker and the exporter, as real processes, must each say so once, in the log and
// in bullpen_redis_data_lost_total; a Redis restart that keeps the data must say nothing of it.
// A flush drops no connection: the exporter finds it by its lanes' state at once, and every app
// on its marker reading interval (redis-data-loss-flush.test.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, realpathSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import IORedis from 'ioredis';
import { laneStateKeys, redisMarkerKey } from '@bullpen/core';
import { writeLanesFile } from './fixtures/worker-process';
import { spawnApi, spawnExporter, spawnWorkerApp, total, type AppProcess } from './support/prometheus';
import { APPEND_ONLY_ALWAYS, removeDir, startRedis, type RedisProcess } from './support/redis-server';
import { testPrefix, waitUntil } from './support/wait';

jest.setTimeout(120_000);

const KEY = 'data-loss-key';
const LANE = 'work';

const lossLines = (app: AppProcess) => app.logs().filter((l) => l.msg === 'redis lost bullpen data');
// Readings at a (re)connect, not the ones every REDIS_MARKER_CHECK_INTERVAL_MS.
const markerReads = (app: AppProcess) => app.logs().filter((l) => l.msg === 'redis marker read' && l.on === 'ready').length;
const lostTotal = async (app: AppProcess) => total(await app.samples(), 'bullpen_redis_data_lost_total');

/** A redis-server without persistence on `port`, in a fresh directory: what comes back empty. */
async function startEmptyRedis(port: number): Promise<{ child: ChildProcess; dir: string }> {
  const dir = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'bullpen-redis-empty-')));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  const probe = new IORedis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => 50 });
  probe.on('error', () => undefined);
  try {
    await waitUntil(async () => ((await probe.config('GET', 'dir').catch(() => [])) as string[])[1] === dir, {
      what: `the empty redis-server to answer on ${port}`,
    });
  } finally {
    probe.disconnect();
  }
  return { child, dir };
}

describe('Redis that loses bullpen data', () => {
  let redis: RedisProcess;
  let empty: { child: ChildProcess; dir: string } | undefined;
  const apps: AppProcess[] = [];
  const lanesFile = writeLanesFile({ lanes: { [LANE]: { concurrency: 2 } } });

  beforeAll(async () => {
    redis = await startRedis(APPEND_ONLY_ALWAYS);
  });

  afterAll(async () => {
    await Promise.all(apps.splice(0).map((app) => app.kill('SIGKILL')));
    await redis.stop();
    removeDir(redis.dir);
    if (empty) {
      const { child, dir } = empty;
      if (child.exitCode === null && child.signalCode === null) {
        await new Promise<void>((resolve) => {
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        });
      }
      removeDir(dir);
    }
    lanesFile.cleanup();
  });

  it('makes each app log and count the loss once when Redis comes back empty (the exporter a flush too), and none when it comes back with its data', async () => {
    const prefix = testPrefix('data-loss');
    const env = {
      REDIS_URL: redis.url,
      BULLPEN_PREFIX: prefix,
      LANES_FILE: lanesFile.file,
      API_KEYS: `acme:${KEY}`,
      LOG_LEVEL: 'debug',
    };
    const started = await Promise.allSettled([spawnApi(env), spawnWorkerApp(env), spawnExporter(env)]);
    for (const s of started) if (s.status === 'fulfilled') apps.push(s.value);
    for (const s of started) if (s.status === 'rejected') throw s.reason;
    const [api, worker, exporter] = apps as [AppProcess, AppProcess, AppProcess];
    const submit = async (data: unknown, name = 'noop') => {
      const res = await fetch(`${api.url}/v1/lanes/${LANE}/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name, data }),
      });
      expect(res.status).toBe(201);
    };
    const completed = async () => total(await exporter.samples(), 'bullpen_jobs_completed_total', { lane: LANE });

    // Each app read (or wrote) the marker, and the series exists at 0 before any loss.
    for (const app of apps) {
      await waitUntil(() => markerReads(app) >= 1, { what: 'the app to read the marker at start' });
      expect(await lostTotal(app)).toBe(0);
    }
    for (let i = 0; i < 3; i += 1) await submit({});
    await waitUntil(async () => (await completed()) === 3, { what: 'the exporter to count the first jobs' });

    // A restart that keeps the data (append-only, fsynced): every app reconnects and reads the
    // marker again, and finds it kept.
    await redis.restart();
    for (const app of apps) await waitUntil(() => markerReads(app) >= 2, { what: 'the app to read the marker after the restart' });
    for (const app of apps) {
      expect(lossLines(app)).toEqual([]);
      expect(await lostTotal(app)).toBe(0);
    }
    expect(exporter.logs().some((l) => String(l.msg).startsWith('Redis lost'))).toBe(false);
    expect(await completed()).toBe(3);

    // Jobs the API acknowledged, two running and two waiting, when Redis comes back empty.
    for (let i = 0; i < 4; i += 1) await submit({ ms: 60_000 }, 'sleep');
    const admin = new IORedis(redis.url);
    try {
      const keys = laneStateKeys(prefix, LANE);
      await waitUntil(async () => (await admin.llen(keys.active)) === 2 && (await admin.llen(keys.wait)) === 2, {
        what: 'two jobs running and two waiting',
      });
    } finally {
      admin.disconnect();
    }
    await redis.stop();
    empty = await startEmptyRedis(redis.port);

    for (const app of apps) {
      await waitUntil(() => lossLines(app).length > 0, { what: `the ${String(app.logs()[0]?.service ?? 'app')} to log the loss` });
      const [line] = lossLines(app);
      expect(line).toMatchObject({ level: 'error', key: redisMarkerKey(prefix), redis: `127.0.0.1:${redis.port}` });
      expect(String(line!.error)).toMatch(/Redis lost bullpen's data.*restarted without persistence.*acknowledged before may be gone.*appendonly yes/);
      await waitUntil(async () => (await lostTotal(app)) === 1, { what: 'the app to count the loss' });
    }

    // The exporter finds its lanes' state gone too: it says Redis lost it (not another exporter's
    // commit) and counts from 0, and the loss is still said and counted once.
    await submit({});
    await waitUntil(async () => (await completed()) === 1, { what: 'the exporter to count the lane again from 0' });
    const exporterLines = exporter.logs().map((l) => String(l.msg));
    expect(exporterLines).toContain("Redis lost the exporter's saved state of this lane (it came back empty or was flushed): counting the lane stream again from 0");
    expect(exporterLines.filter((m) => m.startsWith('another exporter'))).toEqual([]);
    for (const app of apps) {
      expect(lossLines(app)).toHaveLength(1);
      expect(await lostTotal(app)).toBe(1);
    }

    // A flush drops no connection: the exporter finds it as its lane's state is gone at the next
    // events, and says it at once, before its next interval reading of the marker would.
    const flusher = new IORedis(redis.url);
    try {
      await flusher.flushall();
    } finally {
      flusher.disconnect();
    }
    await submit({});
    await waitUntil(() => lossLines(exporter).length === 2, { what: 'the exporter to log the flush' });
    expect(await lostTotal(exporter)).toBe(2);
  });
});
