// A worker whose shutdown grace period ends during a Redis outage that is already over: Redis is
// back, but the worker's connections still wait out their reconnect backoff (up to 2 s). The jobs
// whose handlers the shutdown stopped must go back to the wait list all the same, not be left to
// stall: a stall per restart, with maxStalls 1, dead-letters a job at the second such restart.
// (Build the worker first: npx tsc -b apps/worker.)
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { JOB_FIELD, createLaneQueue, createRedis, jobKeys, loadConfig, wrapJobData } from '@bullpen/core';
import { TEARDOWN_BOUND_MS } from '../apps/worker/src/runtime';
import { cleanupPrefix, standaloneUrl } from './support/config';
import { startOutageProxy } from './support/outage-proxy';
import { redisUrl, testPrefix, waitUntil } from './support/wait';
import { WORKER_MAIN, spawnWorker, writeLanesFile, type WorkerProcess } from './fixtures/worker-process';

const GRACE_MS = 300;
/** The name of the connection a shutdown's hand-back writes the job's start count on. */
const ADMIN_CONNECTION = 'bullpen:worker:admin';
/**
 * Reconnect attempts dropped before the worker is stopped: the delay ioredis then waits before the
 * next one (packages/core/src/redis.ts: 50 ms doubled per attempt) is 1.6 s or more.
 */
const ATTEMPTS_BEFORE_STOP = 4;

describe('a worker stopped while its connections wait out their reconnect backoff after Redis came back', () => {
  const workers: WorkerProcess[] = [];
  const cleanups: Array<() => void | Promise<void>> = [];

  beforeAll(() => {
    if (!existsSync(WORKER_MAIN)) throw new Error(`${WORKER_MAIN} is missing: run npx tsc -b apps/worker first`);
  });

  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /**
   * A HANDLERS_DIR with a handler `gated` that notes each run of its job in the file `runs` and
   * runs until the file `gate` exists. When its signal aborts, it stops once the file `release`
   * exists (a handler tidying up before it stops): the test decides when the hand-back happens.
   */
  function gatedHandlers(): { dir: string; gate: string; release: string; runs: string } {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-redis-back-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(
      path.join(dir, 'gated.js'),
      [
        "const { appendFileSync, existsSync } = require('node:fs');",
        "const { defineHandler } = require('@bullpen/worker');",
        'exports.gated = defineHandler({',
        "  name: 'gated',",
        '  run: ({ gate, release, runs }, { jobId, signal }) =>',
        '    new Promise((resolve, reject) => {',
        "      appendFileSync(runs, `${jobId}\\n`);",
        "      const poll = setInterval(() => existsSync(gate) && (clearInterval(poll), resolve('opened')), 10);",
        "      signal.addEventListener('abort', () => {",
        '        clearInterval(poll);',
        '        const wait = setInterval(() => existsSync(release) && (clearInterval(wait), reject(signal.reason)), 10);',
        '      }, { once: true });',
        '    }),',
        '});',
      ].join('\n'),
    );
    return { dir, gate: path.join(dir, 'open'), release: path.join(dir, 'release'), runs: path.join(dir, 'runs') };
  }

  it('hands the stopped jobs back to the wait list without a stall, and they complete on their next run', async () => {
    const proxy = await startOutageProxy(Number(new URL(redisUrl()).port));
    cleanups.push(() => proxy.close());
    // maxStalls is the default, 1; a lock long enough that a job left to stall stays active here.
    const lanesFile = writeLanesFile({ lanes: { work: { concurrency: 2, attempts: 3, lockDurationMs: 30_000 } } });
    const handlers = gatedHandlers();
    const prefix = testPrefix('redis-back');
    const env = {
      REDIS_URL: proxy.url,
      BULLPEN_PREFIX: prefix,
      LANES_FILE: lanesFile.file,
      HANDLERS_DIR: handlers.dir,
      SHUTDOWN_GRACE_MS: String(GRACE_MS),
    };
    // The test's own connection goes to Redis directly: the outage is the worker's.
    const config = loadConfig({ ...env, REDIS_URL: redisUrl() });
    const redis = createRedis(standaloneUrl(config), 'worker', 'bullpen:test');
    const queue = createLaneQueue(config, 'work', redis);
    cleanups.push(lanesFile.cleanup, async () => {
      await queue.close();
      await redis.quit();
      await cleanupPrefix(prefix);
    });
    const start = async (workerId: string) => {
      const worker = spawnWorker({ ...env, WORKER_ID: workerId });
      workers.push(worker);
      await worker.started();
      return worker;
    };
    const runsOf = (id: string) =>
      existsSync(handlers.runs) ? readFileSync(handlers.runs, 'utf8').split('\n').filter((line) => line === id).length : 0;
    const states = async (ids: readonly string[]) => Promise.all(ids.map((id) => queue.getJobState(id)));

    const add = async () =>
      (await queue.add('gated', wrapJobData({ gate: handlers.gate, release: handlers.release, runs: handlers.runs }, { v: 1, tenant: 'acme' }))).id!;
    const ids = [await add(), await add()];
    const w1 = await start('w1');
    await waitUntil(async () => ids.every((id) => runsOf(id) === 1) && (await states(ids)).every((s) => s === 'active'), {
      what: 'both jobs to run on w1',
    });

    // Redis goes away long enough for the worker's reconnect delays to grow past 1.5 s.
    proxy.down();
    await waitUntil(() => proxy.dropped(ADMIN_CONNECTION) >= ATTEMPTS_BEFORE_STOP, { what: 'the worker to retry Redis a few times' });
    const signalledAt = Date.now();
    w1.child.kill('SIGTERM');
    await waitUntil(() => w1.stdout().includes('shutdown grace period ended with handlers still running'), {
      what: 'the grace period to end',
    });
    // Redis comes back just after one of the worker's attempts failed: the connection waits out
    // its delay (1.6 s or more) while Redis is there. Then the handlers stop, and their jobs are
    // handed back within that delay.
    await proxy.nextDropped(ADMIN_CONNECTION, () => proxy.up());
    writeFileSync(handlers.release, '');
    expect(await w1.exited).toBe(0);
    // The grace period, then the teardown's bound, which the hand-back's wait for Redis is within.
    expect(Date.now() - signalledAt).toBeLessThan(GRACE_MS + 2000 + TEARDOWN_BOUND_MS);

    // The hand-back found the connection waiting out its delay, and did not wait for it.
    expect(w1.stdout()).toContain('Redis is not ready as the shutdown hands jobs back: reconnecting now');
    expect(w1.stdout()).not.toContain('Redis is out of reach: a job the shutdown stopped is left to be reclaimed');
    expect(w1.stdout()).toContain('shutdown stopped a handler still running when the grace period ended; its job goes back to the wait list');
    expect(await states(ids)).toEqual(['waiting', 'waiting']);
    for (const id of ids) {
      const job = (await queue.getJob(id))!;
      expect(job.attemptsMade).toBe(0);
      const [stalls] = await redis.hmget(jobKeys(prefix, 'work', id).job, 'stc');
      expect(Number(stalls ?? 0)).toBe(0);
    }

    // The next worker takes them at once and completes them, the first attempt of each.
    writeFileSync(handlers.gate, '');
    const w2 = await start('w2');
    await waitUntil(async () => (await states(ids)).every((s) => s === 'completed'), { what: 'both jobs to complete on w2' });
    for (const id of ids) {
      const job = (await queue.getJob(id))!;
      expect(job.attemptsMade).toBe(1);
      expect(job.attemptsStarted).toBe(2);
      expect(job.processedBy).toBe('w2');
      const [stalls, uncounted] = await redis.hmget(jobKeys(prefix, 'work', id).job, 'stc', JOB_FIELD.uncountedStarts);
      expect(Number(stalls ?? 0)).toBe(0);
      expect(Number(uncounted)).toBe(1);
      expect((await queue.getJobLogs(id)).logs).toEqual([]);
    }
    expect(w2.stdout()).not.toContain('reclaimed a job whose earlier start never finished');
  });
});
