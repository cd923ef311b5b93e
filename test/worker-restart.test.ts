// Rolling restarts of worker processes (a deploy, then its rollback) while long jobs run in process:
// each worker whose shutdown grace period ends with the jobs still running aborts their handlers'
// signals and hands the jobs back to the wait list, so that its successor takes them at once rather
// than after their locks expire, and no restart counts as a stall against maxStalls or uses an
// attempt, however many of them a job spans. (Build the worker first: npx tsc -b apps/worker.)
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { JOB_FIELD, LANE_EVENT, attemptsOf, createLaneQueue, createRedis, decodeLaneEvent, jobKeys, laneEventsKey, loadConfig, wrapJobData } from '@bullpen/core';
import { cleanupPrefix, standaloneUrl } from './support/config';
import { redisUrl, testPrefix, waitUntil } from './support/wait';
import { WORKER_MAIN, spawnWorker, writeLanesFile, type WorkerProcess } from './fixtures/worker-process';

/** Long enough that a job left to stall recovery could not be taken over within TAKEOVER_MS. */
const LOCK_MS = 30_000;
/** How soon after a worker exits its successor must be running the jobs it gave up. */
const TAKEOVER_MS = 5000;

describe('rolling restarts of workers running long in-process jobs', () => {
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
   * A HANDLERS_DIR with a handler `gated` that notes each run of its job in the file `runs`, then
   * runs until the file `gate` exists; with `honour` it stops when its signal aborts, without it
   * it ignores its signal (an in-process handler cannot be made to stop).
   */
  function gatedHandlers(): { dir: string; gate: string; runs: string } {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-restart-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(
      path.join(dir, 'gated.js'),
      [
        "const { appendFileSync, existsSync } = require('node:fs');",
        "const { defineHandler } = require('@bullpen/worker');",
        'exports.gated = defineHandler({',
        "  name: 'gated',",
        '  run: ({ gate, runs, honour }, { jobId, signal }) =>',
        '    new Promise((resolve, reject) => {',
        "      appendFileSync(runs, `${jobId}\\n`);",
        "      const poll = setInterval(() => existsSync(gate) && (clearInterval(poll), resolve('opened')), 10);",
        "      if (honour) signal.addEventListener('abort', () => (clearInterval(poll), reject(signal.reason)), { once: true });",
        '    }),',
        '});',
      ].join('\n'),
    );
    return { dir, gate: path.join(dir, 'open'), runs: path.join(dir, 'runs') };
  }

  it('hands the jobs back at each restart they outlive, to be taken over at once, and completes them without a stall or a used attempt', async () => {
    // maxStalls is the default, 1: two stalls would fail the jobs as stalled.
    const lanes = { lanes: { work: { concurrency: 2, attempts: 3, lockDurationMs: LOCK_MS } } };
    const prefix = testPrefix('restart');
    const lanesFile = writeLanesFile(lanes);
    const handlers = gatedHandlers();
    const env = {
      REDIS_URL: redisUrl(),
      BULLPEN_PREFIX: prefix,
      LANES_FILE: lanesFile.file,
      HANDLERS_DIR: handlers.dir,
      SHUTDOWN_GRACE_MS: '300',
    };
    const config = loadConfig(env);
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
    /** Both jobs run on `workerId`, the `run`th time each: active there, and their handlers called. */
    const runningOn = async (ids: readonly string[], workerId: string, run: number) => {
      for (const id of ids) {
        const job = await queue.getJob(id);
        if (!job || (await job.getState()) !== 'active' || job.processedBy !== workerId || runsOf(id) !== run) return false;
      }
      return true;
    };

    const add = async (honour: boolean) =>
      (await queue.add('gated', wrapJobData({ gate: handlers.gate, runs: handlers.runs, honour }, { v: 1, tenant: 'acme' }))).id!;
    // One handler that stops when its signal aborts, one that runs on regardless.
    const ids = [await add(true), await add(false)];
    let current = await start('w1');
    await waitUntil(() => runningOn(ids, 'w1', 1), { what: 'both jobs to run on w1' });

    for (const [successorId, run] of [['w2', 2], ['w3', 3]] as const) {
      // As a rolling restart does: the successor is up before the old worker is told to stop.
      const successor = await start(successorId);
      current.child.kill('SIGTERM');
      expect(await current.exited).toBe(0);
      const exitedAt = Date.now();
      // Not once their locks expire (LOCK_MS), found by a stalled checker: at once.
      await waitUntil(() => runningOn(ids, successorId, run), { timeoutMs: TAKEOVER_MS, what: `both jobs to run on ${successorId}` });
      expect(Date.now() - exitedAt).toBeLessThan(TAKEOVER_MS);
      expect(current.stdout()).toContain('shutdown grace period ended with handlers still running; they are stopped and their jobs go back to the wait list');
      expect(current.stdout()).toContain('shutdown stopped a handler still running when the grace period ended; its job goes back to the wait list');
      expect(current.stdout()).toContain('a handler ignored the signal the shutdown aborted; its job goes back to the wait list');
      for (const id of ids) {
        const job = (await queue.getJob(id))!;
        expect(job.attemptsMade).toBe(0);
        expect(job.attemptsStarted).toBe(run);
      }
      current = successor;
    }

    writeFileSync(handlers.gate, '');
    await waitUntil(async () => (await Promise.all(ids.map((id) => queue.getJobState(id)))).every((state) => state === 'completed'), {
      what: 'both jobs to complete on w3',
    });
    for (const id of ids) {
      const job = (await queue.getJob(id))!;
      // Three starts, two of them handed back: one attempt used, and no stall counted.
      expect(job.attemptsMade).toBe(1);
      expect(job.attemptsStarted).toBe(3);
      expect(job.processedBy).toBe('w3');
      expect(job.returnvalue).toBe('opened');
      const [stalls, uncounted] = await redis.hmget(jobKeys(prefix, 'work', id).job, 'stc', JOB_FIELD.uncountedStarts);
      expect(Number(stalls ?? 0)).toBe(0);
      expect(Number(uncounted)).toBe(2);
      // No row for a start lost to a stall, nor any failed attempt.
      expect((await queue.getJobLogs(id)).logs).toEqual([]);
    }
    const laneEvents = async () => (await redis.xrange(laneEventsKey(prefix, 'work'), '-', '+')).map(([, fields]) => decodeLaneEvent(fields));
    // Completed attempts reach the stream in batches.
    const completed = await waitUntil(
      async () => {
        const rows = (await laneEvents()).flatMap((ev) => (ev.event === LANE_EVENT.completedAttempts ? attemptsOf(ev) : []));
        return rows.length === ids.length ? rows : undefined;
      },
      { what: 'the completed attempts in the lane stream' },
    );
    expect(completed.map((a) => [a.jobId, a.attempt]).sort()).toEqual(ids.map((id) => [id, 1]).sort());
    // Nothing taken for a lost start or a failure: no reclaim, no failed attempt, no dead letter
    // (the stream is BullMQ's, which has its own events too).
    const bullpenEvents: readonly string[] = Object.values(LANE_EVENT);
    expect((await laneEvents()).filter((ev) => bullpenEvents.includes(ev.event) && ev.event !== LANE_EVENT.completedAttempts)).toEqual([]);
    for (const worker of workers) {
      expect(worker.stdout()).not.toContain('job stalled');
      expect(worker.stdout()).not.toContain('reclaimed a job whose earlier start never finished');
    }
  });
});
