// A worker against a Redis at `maxmemory` (noeviction): Redis refuses the write that takes a job,
// and BullMQ's fetch loop would ask again at once, forever, logging each refusal. The lane backs
// off instead, in a few log lines, counted on /metrics, and takes its jobs once memory is freed,
// in the same process. The memory guard and the backoff each hold intake: neither's end lets the
// lane take jobs while the other still holds it. Each test has a Redis of its own to fill.
import { existsSync } from 'node:fs';
import { createLaneQueue, createRedis, loadConfig, wrapJobData } from '@bullpen/core';
import IORedis from 'ioredis';
import { startWorkerHarness, type WorkerHarness } from './fixtures/worker-harness';
import { WORKER_MAIN, spawnWorker, writeLanesFile, type WorkerProcess } from './fixtures/worker-process';
import { captureLogs } from './support/logs';
import { parseExposition, total } from './support/prometheus';
import { removeDir, startRedis, type RedisProcess } from './support/redis-server';
import { testPrefix, waitUntil } from './support/wait';

const MiB = 1024 * 1024;
const OUT_OF_MEMORY = /^Redis is out of memory \(maxmemory\): lane a cannot take or finish jobs until memory is freed; intake paused for \d+ ms/;

describe('a worker whose Redis is out of memory', () => {
  let redis: RedisProcess | undefined;
  let admin: IORedis | undefined;
  let worker: WorkerProcess | undefined;
  let harness: WorkerHarness | undefined;
  const cleanups: Array<() => void | Promise<void>> = [];

  beforeEach(async () => {
    redis = await startRedis();
    admin = new IORedis(redis.url);
  });

  afterEach(async () => {
    await worker?.stop('SIGKILL');
    await harness?.close();
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    admin?.disconnect();
    await redis?.stop();
    if (redis) removeDir(redis.dir);
    worker = harness = admin = redis = undefined;
  });

  /** Makes Redis refuse every write that may grow its memory (1 byte is always exceeded). */
  const fillRedis = () => admin!.config('SET', 'maxmemory', '1');
  const freeRedis = () => admin!.config('SET', 'maxmemory', '0');

  it('backs the lane off in a few log lines instead of spinning, and takes its jobs once memory is freed', async () => {
    if (!existsSync(WORKER_MAIN)) throw new Error(`${WORKER_MAIN} is missing: run npx tsc -b apps/worker first`);
    const jobs = 20;
    const lanes = writeLanesFile({ lanes: { a: { concurrency: 2 } } });
    cleanups.push(lanes.cleanup);
    const env = { REDIS_URL: redis!.url, BULLPEN_PREFIX: testPrefix('oom'), LANES_FILE: lanes.file, HOST: '127.0.0.1' };
    const producer = createRedis(redis!.url, 'worker', 'bullpen:test');
    const queue = createLaneQueue(loadConfig(env), 'a', producer);
    cleanups.push(async () => {
      await queue.close();
      producer.disconnect();
    });
    for (let i = 0; i < jobs; i += 1) await queue.add('noop', wrapJobData({}, { v: 1, tenant: 'acme' }));
    await fillRedis();

    worker = spawnWorker(env);
    await worker.started();
    const w = worker;
    const lines = () =>
      w
        .stdout()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    const port = lines().find((l) => l.msg === 'metrics listening')?.port as number;
    const sample = async (name: string, labels: Record<string, string>) =>
      total(parseExposition(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()), name, labels);
    const refusals = () => sample('bullpen_worker_redis_oom_total', { lane: 'a' });
    const pausedFor = (reason: string) => sample('bullpen_worker_intake_paused', { lane: 'a', reason });

    // A refusal, a pause of 1 s, another, a pause of 2 s, another: it has backed off three times.
    await waitUntil(() => lines().filter((l) => l.pause_ms === 4000).length > 0, { timeoutMs: 30_000, what: 'the third pause' });
    const refused = await refusals();
    // Each pause ends in a fetch and a stalled-job check, both refused; a spinning loop would have
    // been refused thousands of times by now.
    expect(refused).toBeGreaterThanOrEqual(3);
    expect(refused).toBeLessThanOrEqual(10);
    await waitUntil(async () => (await pausedFor('redis_oom')) === 1, { what: 'the gauge to show the pause' });
    expect(await pausedFor('memory_guard')).toBe(0);
    expect(await queue.getJobCounts('wait', 'active', 'completed')).toEqual({ wait: jobs, active: 0, completed: 0 });
    // Started on a full Redis, it could not record its lanes in the lane registry either: once.
    const unrecorded = (l: Record<string, unknown>) => l.msg === 'could not record the lanes in the lane registry';
    expect(lines().filter(unrecorded)).toEqual([expect.objectContaining({ level: 'warn', error: expect.stringMatching(/^OOM /) })]);
    const oomLines = lines().filter(
      (l) => !unrecorded(l) && (JSON.stringify(l).includes('out of memory') || JSON.stringify(l).includes('OOM')),
    );
    expect(oomLines.map((l) => [l.level, l.pause_ms])).toEqual([
      ['error', 1000],
      ['warn', 2000],
      ['warn', 4000],
    ]);
    expect(oomLines[0]?.msg).toMatch(OUT_OF_MEMORY);
    expect(oomLines[0]).toMatchObject({ lane: 'a', error: expect.stringMatching(/^OOM command not allowed/) });
    expect(lines().filter((l) => l.msg === 'lane worker error')).toEqual([]);

    await freeRedis();
    await waitUntil(async () => (await queue.getJobCounts('completed')).completed === jobs, {
      timeoutMs: 60_000,
      what: `all ${jobs} jobs to complete`,
    });
    expect(lines().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('Redis accepts writes again'))).toEqual([
      expect.objectContaining({ level: 'info', lane: 'a', msg: 'Redis accepts writes again: lane a takes and finishes jobs again' }),
    ]);
    expect(await pausedFor('redis_oom')).toBe(0);
    expect(await refusals()).toBeLessThanOrEqual(refused + 3);
    expect(await w.stop('SIGTERM')).toBe(0);
  });

  it('keeps the lane paused while the backoff holds it, though the memory guard lets go meanwhile', async () => {
    let rss = 10 * MiB;
    harness = await startWorkerHarness({
      lanesFile: { lanes: { a: { concurrency: 1 } } },
      env: { REDIS_URL: redis!.url, WORKER_MAX_RSS_MB: '64' },
      memory: { intervalMs: 20, sample: () => ({ rss, heapUsed: 0 }) },
      start: false,
    });
    const h = harness;
    h.logger.level = 'info';
    const logs = captureLogs(h.logger);
    const pauseLine = (pauseMs: number) =>
      waitUntil(() => logs.find((l) => l.pause_ms === pauseMs), { timeoutMs: 30_000, what: `the pause of ${pauseMs} ms` });
    for (let i = 0; i < 3; i += 1) await h.add('a', 'noop', {});
    await fillRedis();
    await h.runtime.start();

    // The backoff's third pause (4 s) has begun. Memory is freed, and meanwhile the memory guard
    // pauses intake and lets go: the lane must still wait for the backoff's pause to end.
    const paused = Date.parse((await pauseLine(4000)).ts as string);
    await freeRedis();
    rss = 100 * MiB;
    await h.waitForEvent('memory:paused', () => true);
    rss = 10 * MiB;
    const resumed = await h.waitForEvent('memory:resumed', () => true);
    expect(resumed.at).toBeLessThan(paused + 4000);
    expect(h.runtime.stats().lanes.a?.intakePausedBy).toEqual(['redis_oom']);

    const started = await h.waitForEvent('job:started', () => true, 30_000);
    expect(started.at).toBeGreaterThanOrEqual(paused + 4000);
    await waitUntil(async () => (await h.queue('a').getJobCounts('completed')).completed === 3, {
      what: 'the jobs to complete once memory is freed',
    });
    expect(h.runtime.stats().lanes.a?.intakePausedBy).toEqual([]);
  });
});
