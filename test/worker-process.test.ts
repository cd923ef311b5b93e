// The worker as a process: `node apps/worker/dist/main.js` (build it first: npx tsc -b apps/worker).
// A cluster-wide lane cap across two processes, graceful shutdown on SIGTERM, and a startup
// configuration error.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { attemptsOf, createLaneQueue, createRedis, decodeLaneEvent, laneEventsKey, LANE_EVENT, loadConfig, wrapJobData, type BullpenConfig } from '@bullpen/core';
import type { Queue } from 'bullmq';
import type IORedis from 'ioredis';
import { TEARDOWN_BOUND_MS } from '../apps/worker/src/runtime';
import { cleanupPrefix, standaloneUrl } from './support/config';
import { APPEND_ONLY_ALWAYS, removeDir, startRedis, type RedisProcess } from './support/redis-server';
import { redisUrl, testPrefix, waitUntil } from './support/wait';
import { FIXTURE_HANDLERS_DIR, WORKER_MAIN, spawnWorker, writeLanesFile, type WorkerProcess } from './fixtures/worker-process';

describe('the worker process', () => {
  const workers: WorkerProcess[] = [];
  const cleanups: Array<() => void | Promise<void>> = [];

  beforeAll(() => {
    if (!existsSync(WORKER_MAIN)) throw new Error(`${WORKER_MAIN} is missing: run npx tsc -b apps/worker first`);
  });

  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /** A lanes file, the env a worker process needs, and a producer queue for `lane`. */
  function setup(lanes: unknown, lane: string, extraEnv: Record<string, string> = {}) {
    const prefix = testPrefix('wp');
    const lanesFile = writeLanesFile(lanes);
    const env = { REDIS_URL: redisUrl(), BULLPEN_PREFIX: prefix, LANES_FILE: lanesFile.file, ...extraEnv };
    const config: BullpenConfig = loadConfig(env);
    const redis: IORedis = createRedis(standaloneUrl(config), 'worker', 'bullpen:test');
    const queue: Queue = createLaneQueue(config, lane, redis);
    cleanups.push(lanesFile.cleanup, async () => {
      await queue.close();
      await redis.quit();
      await cleanupPrefix(prefix);
    });
    const start = (more: Record<string, string> = {}) => {
      const worker = spawnWorker({ ...env, ...more });
      workers.push(worker);
      return worker;
    };
    return { prefix, env, queue, redis, start };
  }

  it('holds a lane global concurrency cap across two worker processes', async () => {
    const { prefix, queue, redis, start } = setup(
      { maxHandlersPerProcess: 16, lanes: { shared: { concurrency: 4, globalConcurrency: 3 } } },
      'shared',
      { HANDLERS_DIR: FIXTURE_HANDLERS_DIR },
    );
    const a = start({ WORKER_ID: 'a' });
    const b = start({ WORKER_ID: 'b' });
    await Promise.all([a.started(), b.started()]);

    const key = `${prefix}:probe`;
    const total = 18;
    await queue.addBulk(Array.from({ length: total }, () => ({ name: 'probe', data: wrapJobData({ ms: 150, key }, { v: 1, tenant: 't' }) })));
    await waitUntil(async () => (await queue.getJobCounts('completed')).completed === total, {
      timeoutMs: 30_000,
      what: 'all probe jobs to complete',
    });

    const max = Number(await redis.get(`${key}:max`));
    const byProcess = await redis.hgetall(`${key}:by-process`);
    // Each process alone would run 4 at once, two of them 8; the lane's cluster-wide cap is 3.
    expect(max).toBe(3);
    expect(Object.keys(byProcess)).toHaveLength(2);
    expect(Object.values(byProcess).reduce((sum, n) => sum + Number(n), 0)).toBe(total);
    expect(await queue.getGlobalConcurrency()).toBe(3);
  });

  it('lets active jobs finish on SIGTERM, takes no new ones, and exits 0', async () => {
    const { queue, start } = setup({ lanes: { work: { concurrency: 3 } } }, 'work', { SHUTDOWN_GRACE_MS: '20000' });
    const worker = start();
    await worker.started();

    const active = await Promise.all(
      [0, 1, 2].map(async () => (await queue.add('sleep', wrapJobData({ ms: 1500 }, { v: 1, tenant: 't' }))).id!),
    );
    await waitUntil(async () => (await queue.getActiveCount()) === 3, { what: 'three active jobs' });
    const waiting = (await queue.add('sleep', wrapJobData({ ms: 10 }, { v: 1, tenant: 't' }))).id!;

    const signalledAt = Date.now();
    expect(await worker.stop('SIGTERM')).toBe(0);

    for (const id of active) {
      const job = await queue.getJob(id);
      expect(await job!.getState()).toBe('completed');
      expect(job!.finishedOn).toBeGreaterThanOrEqual(signalledAt);
    }
    expect(await queue.getJobState(waiting)).toBe('waiting');
    expect(worker.stdout()).toContain('"msg":"shutting down: no new jobs; waiting for active ones"');
    expect(worker.stdout()).toContain('"msg":"worker stopped"');
  });

  it('rides out SIGHUP, which reloads the other apps: the running job completes and new ones are taken', async () => {
    const { queue, start } = setup({ lanes: { work: { concurrency: 1 } } }, 'work');
    const worker = start();
    await worker.started();
    const running = (await queue.add('sleep', wrapJobData({ ms: 500 }, { v: 1, tenant: 't' }))).id!;
    await waitUntil(async () => (await queue.getJobState(running)) === 'active', { what: 'the job to be active' });

    worker.child.kill('SIGHUP');
    await waitUntil(
      () => {
        if (worker.child.exitCode !== null || worker.child.signalCode !== null) throw new Error(`worker exited: ${worker.stderr()}${worker.stdout()}`);
        return worker.stdout().includes('"msg":"SIGHUP: the worker has nothing to reload');
      },
      { what: 'the worker to log SIGHUP' },
    );
    await waitUntil(async () => (await queue.getJobState(running)) === 'completed', { what: 'the running job to complete' });
    const next = (await queue.add('sleep', wrapJobData({ ms: 10 }, { v: 1, tenant: 't' }))).id!;
    await waitUntil(async () => (await queue.getJobState(next)) === 'completed', { what: 'a job sent after SIGHUP to complete' });
    expect(await worker.stop('SIGTERM')).toBe(0);
  });

  it('exits 0 after the grace period even when a job is still running, handing the job back to the wait list', async () => {
    // LOG_LEVEL=debug for the attempt's "attempt started" line.
    const { queue, start } = setup({ lanes: { work: { concurrency: 1, lockDurationMs: 5000 } } }, 'work', {
      SHUTDOWN_GRACE_MS: '300',
      LOG_LEVEL: 'debug',
    });
    const worker = start();
    await worker.started();
    const id = (await queue.add('sleep', wrapJobData({ ms: 60_000 }, { v: 1, tenant: 't' }))).id!;
    // Its handler running, not just the job fetched: a job fetched but not yet started when the
    // signal comes is handed back to the wait list, as it should be.
    await waitUntil(async () => worker.stdout().includes('"msg":"attempt started"'), { what: "the job's attempt to start" });
    expect(await queue.getJobState(id)).toBe('active');

    const signalledAt = Date.now();
    expect(await worker.stop('SIGTERM')).toBe(0);
    expect(Date.now() - signalledAt).toBeLessThan(5000);
    // Not failed, and not left active until its lock expires: its handler was stopped, and the job
    // went back to wait at once, with no attempt used and nothing recorded.
    expect(await queue.getJobState(id)).toBe('waiting');
    const job = (await queue.getJob(id))!;
    expect(job.attemptsMade).toBe(0);
    expect(job.failedReason).toBeUndefined();
    expect((await queue.getJobLogs(id)).logs).toEqual([]);
    expect(worker.stdout()).toContain('shutdown grace period ended with handlers still running');
    expect(worker.stdout()).toContain('shutdown stopped a handler still running when the grace period ended; its job goes back to the wait list');
  });

  it('hands an isolated lane\'s running job back after the grace period, recording no failed attempt', async () => {
    const { prefix, queue, redis, start } = setup({ lanes: { iso: { concurrency: 1, isolated: true, attempts: 3 } } }, 'iso', {
      SHUTDOWN_GRACE_MS: '300',
      LOG_LEVEL: 'debug',
    });
    const worker = start();
    await worker.started();
    // Still running when the 300 ms grace period ends.
    const id = (await queue.add('sleep', wrapJobData({ ms: 2000 }, { v: 1, tenant: 't' }))).id!;
    await waitUntil(async () => worker.stdout().includes('"msg":"attempt started"'), { what: "the job's attempt to start" });

    const signalledAt = Date.now();
    expect(await worker.stop('SIGTERM')).toBe(0);
    expect(Date.now() - signalledAt).toBeLessThan(2000);
    // Its thread was stopped, so the job goes back to wait at once, with no attempt used and
    // nothing blamed on its handler: no attempt row, no failed attempt event.
    expect(await queue.getJobState(id)).toBe('waiting');
    const job = (await queue.getJob(id))!;
    expect(job.attemptsMade).toBe(0);
    expect(job.failedReason).toBeUndefined();
    expect((await queue.getJobLogs(id)).logs).toEqual([]);
    const events = (await redis.xrange(laneEventsKey(prefix, 'iso'), '-', '+')).map(([, fields]) => decodeLaneEvent(fields));
    expect(events.filter((ev) => ev.event === LANE_EVENT.attempt)).toEqual([]);
    expect(worker.stdout()).toContain('shutdown stopped an isolated handler; its job goes back to the wait list');

    // The next worker runs it to completion as its first attempt, not as the reclaim of a lost one.
    const next = start();
    await next.started();
    const laneEvents = async () => (await redis.xrange(laneEventsKey(prefix, 'iso'), '-', '+')).map(([, fields]) => decodeLaneEvent(fields));
    // Completed attempts reach the stream in batches.
    const completedAttempts = await waitUntil(
      async () => {
        const rows = (await laneEvents()).flatMap((ev) => (ev.event === LANE_EVENT.completedAttempts ? attemptsOf(ev) : []));
        return rows.length > 0 ? rows : undefined;
      },
      { what: 'the job to complete on the next worker' },
    );
    expect(completedAttempts.map((a) => [a.jobId, a.attempt])).toEqual([[id, 1]]);
    expect((await laneEvents()).filter((ev) => ev.event === LANE_EVENT.reclaimed || ev.event === LANE_EVENT.attempt)).toEqual([]);
    expect(next.stdout()).not.toContain('reclaimed a job whose earlier start never finished');
  });

  /** A started worker with a short grace period (unless given) on a Redis of its own, for the test to stop or freeze. */
  async function workerOnOwnRedis(
    graceMs = 300,
    extraEnv: Record<string, string> = {},
    redisArgs: readonly string[] = [],
  ): Promise<{ redis: RedisProcess; worker: WorkerProcess; queue: Queue }> {
    const redis = await startRedis(redisArgs);
    cleanups.push(async () => {
      redis.child.kill('SIGCONT');
      await redis.stop();
      removeDir(redis.dir);
    });
    const lanesFile = writeLanesFile({ lanes: { work: { concurrency: 1 } } });
    cleanups.push(lanesFile.cleanup);
    const env = { REDIS_URL: redis.url, BULLPEN_PREFIX: testPrefix('wp'), LANES_FILE: lanesFile.file, SHUTDOWN_GRACE_MS: String(graceMs), ...extraEnv };
    const worker = spawnWorker(env);
    workers.push(worker);
    await worker.started();
    const producer = createRedis(redis.url, 'worker', 'bullpen:test');
    const queue = createLaneQueue(loadConfig(env), 'work', producer);
    cleanups.push(async () => {
      await queue.close().catch(() => undefined);
      producer.disconnect();
    });
    return { redis, worker, queue };
  }

  it("writes BullMQ's own console warnings as JSON lines on stdout, a repeated one once", async () => {
    // BullMQ warns with console.warn, on every connection it opens, that an evicting Redis may lose jobs.
    const redis = await startRedis(['--maxmemory', '100mb', '--maxmemory-policy', 'allkeys-lru']);
    cleanups.push(async () => {
      await redis.stop();
      removeDir(redis.dir);
    });
    const lanesFile = writeLanesFile({ lanes: { a: { concurrency: 1 }, b: { concurrency: 1 } } });
    cleanups.push(lanesFile.cleanup);
    const worker = spawnWorker({ REDIS_URL: redis.url, BULLPEN_PREFIX: testPrefix('wp'), LANES_FILE: lanesFile.file });
    workers.push(worker);
    await worker.started();
    const bullmqWarning = 'IMPORTANT! Eviction policy is allkeys-lru';
    await waitUntil(() => worker.stdout().includes(bullmqWarning), { what: "BullMQ's warning in the worker's log" });
    expect(worker.stderr()).not.toContain(bullmqWarning);
    const lines = worker
      .stdout()
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const warnings = lines.filter((l) => String(l.msg).startsWith(bullmqWarning));
    expect(warnings).toEqual([expect.objectContaining({ level: 'warn', service: 'worker', source: 'console' })]);
  });

  it('exits 0 on SIGTERM at once while Redis is down and it holds no job, without waiting out the grace period', async () => {
    const graceMs = 60_000;
    const { redis, worker } = await workerOnOwnRedis(graceMs);
    await redis.stop();
    await waitUntil(async () => worker.stdout().includes('"msg":"cannot reach redis"'), { what: 'the worker to lose Redis' });

    const signalledAt = Date.now();
    worker.child.kill('SIGTERM');
    // Well inside the grace period, and inside the teardown's own bound: nothing waited for Redis.
    await waitUntil(async () => worker.child.exitCode !== null, { timeoutMs: 4000, what: 'the worker to exit' });
    expect(await worker.exited).toBe(0);
    expect(Date.now() - signalledAt).toBeLessThan(4000);
    expect(worker.stdout()).toContain('lane holds no job and Redis is out of reach');
    expect(worker.stdout()).not.toContain('shutdown grace period ended');
    expect(worker.stdout()).not.toContain('handlers still running');
    expect(worker.stdout()).toContain('"msg":"worker stopped"');
  });

  it('leaves a job still running at the end of the grace period to be reclaimed when Redis is down, and exits within the bound on its teardown', async () => {
    // LOG_LEVEL=debug for the attempt's "attempt started" line; a Redis that keeps the job across its restart.
    const { redis, worker, queue } = await workerOnOwnRedis(300, { LOG_LEVEL: 'debug' }, APPEND_ONLY_ALWAYS);
    const id = (await queue.add('sleep', wrapJobData({ ms: 60_000 }, { v: 1, tenant: 't' }))).id!;
    await waitUntil(async () => worker.stdout().includes('"msg":"attempt started"'), { what: "the job's attempt to start" });
    await redis.stop();
    await waitUntil(async () => worker.stdout().includes('"msg":"cannot reach redis"'), { what: 'the worker to lose Redis' });

    const signalledAt = Date.now();
    expect(await worker.stop('SIGTERM')).toBe(0);
    // The grace period, then at most the teardown's bound on what Redis never takes.
    expect(Date.now() - signalledAt).toBeLessThan(300 + TEARDOWN_BOUND_MS + 2000);
    expect(worker.stdout()).toContain('Redis is out of reach: a job the shutdown stopped is left to be reclaimed once its lock expires');
    expect(worker.stdout()).toContain('"msg":"worker stopped"');
    // Nothing recorded against it: it is still active, for BullMQ's stalled-job recovery.
    await redis.restart();
    expect(await queue.getJobState(id)).toBe('active');
    expect((await queue.getJob(id))!.attemptsMade).toBe(0);
    expect((await queue.getJobLogs(id)).logs).toEqual([]);
  });

  /**
   * A HANDLERS_DIR with a handler `gated` that runs until the file named in its payload exists: the
   * test decides when it ends, whatever the machine's load makes of the time in between.
   */
  function gatedHandlers(): { dir: string; gate: string } {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-gated-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(
      path.join(dir, 'gated.js'),
      [
        "const { existsSync } = require('node:fs');",
        "const { defineHandler } = require('@bullpen/worker');",
        'exports.gated = defineHandler({',
        "  name: 'gated',",
        '  run: ({ file }, { signal }) =>',
        '    new Promise((resolve, reject) => {',
        "      const poll = setInterval(() => existsSync(file) && (clearInterval(poll), resolve('opened')), 10);",
        "      signal.addEventListener('abort', () => (clearInterval(poll), reject(signal.reason)), { once: true });",
        '    }),',
        '});',
      ].join('\n'),
    );
    return { dir, gate: path.join(dir, 'open') };
  }

  it('waits out the grace period while Redis is down when a job it ran has no stored outcome yet', async () => {
    const graceMs = 4000;
    const handlers = gatedHandlers();
    // LOG_LEVEL=debug for the attempt's "attempt started" and "attempt succeeded" lines.
    const { redis, worker, queue } = await workerOnOwnRedis(graceMs, { HANDLERS_DIR: handlers.dir, LOG_LEVEL: 'debug' });
    await queue.add('gated', wrapJobData({ file: handlers.gate }, { v: 1, tenant: 'acme' }));
    // Its handler running, and kept running until the gate opens: a handler that ended (and had its
    // outcome stored) before Redis stopped would leave the lane holding nothing, and the worker would
    // rightly exit at once.
    await waitUntil(async () => worker.stdout().includes('"msg":"attempt started"'), { what: "the job's attempt to start" });
    await redis.stop();
    await waitUntil(async () => worker.stdout().includes('"msg":"cannot reach redis"'), { what: 'the worker to lose Redis' });

    const signalledAt = Date.now();
    worker.child.kill('SIGTERM');
    await waitUntil(async () => worker.stdout().includes('"msg":"shutting down: no new jobs; waiting for active ones"'), {
      what: 'the worker to begin its shutdown',
    });
    // The handler ends within the grace period, but its outcome cannot be stored: the lane still
    // holds the job, so the worker gives Redis the whole grace period to come back.
    writeFileSync(handlers.gate, '');
    expect(await worker.exited).toBe(0);
    expect(Date.now() - signalledAt).toBeGreaterThanOrEqual(graceMs);
    expect(worker.stdout()).toContain('"msg":"attempt succeeded"');
    // The time alone does not tell: a lane that let go of the job when its handler returned would
    // stop at once, and the worker would then spend its teardown bound (5 s) on its unstored writes.
    expect(worker.stdout()).not.toContain('lane holds no job and Redis is out of reach');
    expect(worker.stdout()).toContain('shutdown grace period ended before the lanes stopped taking jobs; no handler was running');
  });

  it('exits on SIGTERM while Redis hangs, dropping the connections it cannot close', async () => {
    const { redis, worker } = await workerOnOwnRedis();
    // Redis stops answering but keeps its connections open (a hung server, a partition without a
    // reset): nothing the worker sends on closing is ever answered.
    redis.child.kill('SIGSTOP');

    expect(await worker.stop('SIGTERM')).toBe(0);
    expect(worker.stdout()).toContain('closing its connections without them');
    expect(worker.stdout()).toContain('"msg":"worker stopped"');
  });

  describe('with handlers that leave errors nothing catches', () => {
    /** A HANDLERS_DIR with handlers that return at once, leaving behind a rejected promise nothing
     * awaits (`careless`) or an exception thrown from a timer (`crash`). */
    function carelessHandlers(): string {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-careless-'));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      writeFileSync(
        path.join(dir, 'careless.js'),
        [
          "const { defineHandler } = require('@bullpen/worker');",
          "exports.careless = defineHandler({ name: 'careless', run: () => { Promise.reject(new Error('stray rejection')); return 'ok'; } });",
          "exports.crash = defineHandler({ name: 'crash', run: () => { setTimeout(() => { throw new Error('uncaught boom'); }, 0); return 'ok'; } });",
        ].join('\n'),
      );
      return dir;
    }

    /** The worker's stdout as JSON lines; throws on a line that is not one. */
    function jsonLines(worker: WorkerProcess): Array<Record<string, unknown>> {
      return worker
        .stdout()
        .split('\n')
        .filter((line) => line.trim() !== '')
        .map((line) => {
          try {
            return JSON.parse(line) as Record<string, unknown>;
          } catch {
            throw new Error(`not a JSON log line: ${line}`);
          }
        });
    }

    it('logs a stray promise rejection as one JSON line, counts it, and goes on running its other jobs', async () => {
      const { queue, start } = setup({ lanes: { work: { concurrency: 2, maxStalls: 0, lockDurationMs: 5000 } } }, 'work', {
        HANDLERS_DIR: carelessHandlers(),
      });
      const worker = start();
      await worker.started();
      const add = async (name: string, data: unknown) => (await queue.add(name, wrapJobData(data, { v: 1, tenant: 't' }))).id!;

      const port = jsonLines(worker).find((l) => l.msg === 'metrics listening')?.port as number;
      const rejectionsCounted = async () => {
        const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
        return Number(/^bullpen_worker_unhandled_rejections_total (\S+)$/m.exec(text)?.[1]);
      };
      expect(await rejectionsCounted()).toBe(0);

      const innocent = await add('sleep', { ms: 1500 });
      await waitUntil(async () => (await queue.getJobState(innocent)) === 'active', { what: 'the innocent job to start' });
      const careless = await add('careless', {});
      const exitedEarly = () => {
        if (worker.child.exitCode !== null) throw new Error(`worker exited with ${worker.child.exitCode}: ${worker.stderr()}`);
      };
      await waitUntil(
        async () => {
          exitedEarly();
          return (await queue.getJobState(careless)) === 'completed';
        },
        { what: 'the careless job to complete' },
      );
      await waitUntil(
        async () => {
          exitedEarly();
          return (await queue.getJobState(innocent)) === 'completed';
        },
        { what: 'the innocent job to complete' },
      );
      // Still taking jobs.
      const after = await add('noop', {});
      await waitUntil(async () => (await queue.getJobState(after)) === 'completed', { what: 'a later job to complete' });

      expect(worker.child.exitCode).toBeNull();
      expect(worker.stderr()).toBe('');
      const line = jsonLines(worker).find((l) => typeof l.msg === 'string' && l.msg.startsWith('unhandled promise rejection'));
      expect(line).toMatchObject({ level: 'error', service: 'worker', error: 'stray rejection', error_name: 'Error' });
      expect(line?.stack).toEqual(expect.stringContaining('careless.js'));
      expect(await rejectionsCounted()).toBe(1);
    });

    it('logs an uncaught exception as JSON, lets its active jobs finish, and exits 1', async () => {
      const { queue, start } = setup({ lanes: { work: { concurrency: 2 } } }, 'work', {
        HANDLERS_DIR: carelessHandlers(),
        SHUTDOWN_GRACE_MS: '20000',
      });
      const worker = start();
      await worker.started();
      const add = async (name: string, data: unknown) => (await queue.add(name, wrapJobData(data, { v: 1, tenant: 't' }))).id!;

      const innocent = await add('sleep', { ms: 1500 });
      await waitUntil(async () => (await queue.getJobState(innocent)) === 'active', { what: 'the innocent job to start' });
      await add('crash', {});

      expect(await worker.exited).toBe(1);
      expect(await queue.getJobState(innocent)).toBe('completed');
      expect(worker.stderr()).toBe('');
      const lines = jsonLines(worker);
      expect(lines).toContainEqual(
        expect.objectContaining({ level: 'error', error: 'uncaught boom', msg: expect.stringMatching(/^uncaught exception/), active_handlers: { work: expect.any(Number) } }),
      );
      expect(lines).toContainEqual(expect.objectContaining({ msg: 'shutting down: no new jobs; waiting for active ones', cause: 'uncaught exception' }));
      expect(lines).toContainEqual(expect.objectContaining({ msg: 'worker stopped', exit_code: 1 }));
    });
  });

  it('prints a configuration error and exits 1', async () => {
    const worker = spawnWorker({ REDIS_URL: redisUrl(), LANES_FILE: '/nonexistent/lanes.json' });
    workers.push(worker);
    expect(await worker.exited).toBe(1);
    expect(worker.stderr()).toMatch(/^bullpen worker: LANES_FILE \(\/nonexistent\/lanes.json\): expected a readable JSON file/);
  });

  it.each([
    ['in a folder whose package.json says "type": "module"', true, '"type": "module" in '],
    ['with import and export statements', false, 'it has import or export statements'],
  ])('refuses to start on an ES module in HANDLERS_DIR %s, saying that ES modules are not loaded', async (_label, typeModule, why) => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-esm-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    if (typeModule) writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}');
    writeFileSync(path.join(dir, 'job.js'), "import { defineHandler } from '@bullpen/worker';\nexport default defineHandler({ name: 'esm_job', run: () => 1 });\n");
    const worker = spawnWorker({ REDIS_URL: redisUrl(), HANDLERS_DIR: dir });
    workers.push(worker);
    expect(await worker.exited).toBe(1);
    expect(worker.stderr()).toContain(`bullpen worker: HANDLERS_DIR (${dir}): file job.js is an ES module (${why}`);
    expect(worker.stderr()).toContain('and ES modules are not loaded: build it to CommonJS (require and module.exports) first');
  });

  it('refuses to start when a HANDLERS_DIR handler reuses a built-in name', async () => {
    const worker = spawnWorker({ REDIS_URL: redisUrl(), HANDLERS_DIR: `${FIXTURE_HANDLERS_DIR}/../bad-handlers` });
    workers.push(worker);
    expect(await worker.exited).toBe(1);
    expect(worker.stderr()).toMatch(/HANDLERS_DIR .*handler name "sleep" is registered twice: by the built-in handlers and by .*sleep-again\.js/);
  });
});
