// A job whose worker dies while running it is reclaimed, but only as often as its lane's
// `maxStalls` allows: one more loss and it fails as stalled, so that a job that kills its worker
// cannot go on to kill one after another. Worker processes are SIGKILLed under a running job twice.
import { existsSync } from 'node:fs';
import { JOB_FIELD, createLaneQueue, createLogger, createRedis, jobKeys, loadConfig, parseLeaseRecord, wrapJobData } from '@bullpen/core';
import { DeadLetters } from '../apps/api/src/dead-letters';
import { LaneRegistry } from '../apps/api/src/lane-registry';
import { createApiRedis, RedisGuard } from '../apps/api/src/redis-guard';
import { jobStatusView } from '../apps/api/src/views';
import { cleanupPrefix } from './support/config';
import { redisUrl, testPrefix, waitUntil } from './support/wait';
import { WORKER_MAIN, spawnWorker, writeLanesFile, type WorkerProcess } from './fixtures/worker-process';

describe("a lane's maxStalls", () => {
  const workers: WorkerProcess[] = [];
  const cleanups: Array<() => void | Promise<void>> = [];
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /** Starts a job that outlives the test, and SIGKILLs the worker running it twice. */
  function loseItsWorkerTwice(maxStalls: number) {
    return loseItsWorker({ maxStalls }, 2);
  }

  /** Starts a long job on a lane with `policy`, and SIGKILLs the worker running it `times` times. */
  async function loseItsWorker(policy: Record<string, unknown>, times: number) {
    if (!existsSync(WORKER_MAIN)) throw new Error(`${WORKER_MAIN} is missing: run npx tsc -b apps/worker first`);
    const lanes = { lanes: { work: { concurrency: 1, attempts: 3, lockDurationMs: 1000, ...policy } } };
    const prefix = testPrefix('stalls');
    const lanesFile = writeLanesFile(lanes);
    const env = { REDIS_URL: redisUrl(), BULLPEN_PREFIX: prefix, LANES_FILE: lanesFile.file };
    const redis = createRedis(redisUrl(), 'worker', 'bullpen:test');
    const queue = createLaneQueue(loadConfig(env), 'work', redis);
    cleanups.push(lanesFile.cleanup, () => cleanupPrefix(prefix), async () => {
      await queue.close();
      await redis.quit();
    });
    const start = async (n: number) => {
      const worker = spawnWorker({ ...env, WORKER_ID: `worker-${n}` });
      workers.push(worker);
      await worker.started();
      return worker;
    };
    const id = (await queue.add('sleep', wrapJobData({ ms: 120_000 }, { v: 1, tenant: 'acme' }))).id!;
    const lease = async () => parseLeaseRecord(await redis.hget(jobKeys(prefix, 'work', id).job, JOB_FIELD.lease));

    let running = await start(1);
    let started = 1;
    /** Kills the worker running start `lost` of the job, once a live one will notice the loss. */
    const loseItsWorker = async (lost: number) => {
      await waitUntil(async () => (await lease())?.ats === lost, { timeoutMs: 20_000, what: `start ${lost} of the job` });
      started += 1;
      const next = await start(started);
      running.child.kill('SIGKILL');
      await running.exited;
      running = next;
    };
    for (let lost = 1; lost <= times; lost += 1) await loseItsWorker(lost);
    return { queue, id, lease, env, loseItsWorker };
  }

  it('fails a job as stalled once it has lost its worker one time more than maxStalls', async () => {
    const { queue, id, lease } = await loseItsWorkerTwice(1);
    await waitUntil(async () => (await queue.getJobState(id)) === 'failed', { timeoutMs: 20_000, what: 'the job to fail as stalled' });
    const job = await queue.getJob(id);
    expect(job?.failedReason).toMatch(/stalled more than allowable limit/);
    expect((await lease())?.ats).toBe(2);
    // BullMQ fails it before any attempt runs, so no attempt row names why: the API says it.
    expect(jobStatusView(job!, 'work', 'failed', []).errorClass).toBe('stalled');
  });

  it("keeps a row for each start a stall lost in a dead letter's attempt history", async () => {
    const { queue, id } = await loseItsWorkerTwice(1);
    await waitUntil(async () => (await queue.getJobState(id)) === 'failed', { timeoutMs: 20_000, what: 'the job to fail as stalled' });
    // The second row is written by the worker that found the second stall, which may come after
    // the job has failed.
    await waitUntil(async () => (await queue.getJobLogs(id)).logs.length === 2, { timeoutMs: 10_000, what: 'both stall rows' });
    const job = await queue.getJob(id);
    const view = jobStatusView(job!, 'work', 'failed', (await queue.getJobLogs(id)).logs);
    expect(view.attemptsMade).toBe(1);
    expect(view.errorClass).toBe('stalled');
    expect(view.attempts).toEqual([
      expect.objectContaining({ attempt: 1, errorClass: 'stalled', worker: 'worker-1', delayMs: null, message: expect.stringContaining('moved back to wait') }),
      expect.objectContaining({ attempt: 1, errorClass: 'stalled', worker: 'worker-2', delayMs: null, message: expect.stringContaining('fails as stalled') }),
    ]);
  });

  it('writes one row for a start a stall lost, then the row of the attempt that reran it', async () => {
    // One loss, within maxStalls: the rerun times out, and with one attempt the job is dead. The
    // timeout outlasts starting the second worker (seconds on a busy machine), which comes before
    // the first is killed: a first run that timed out first would leave no stall to write.
    const { queue, id } = await loseItsWorker({ maxStalls: 1, attempts: 1, timeoutMs: 10_000 }, 1);
    await waitUntil(async () => (await queue.getJobState(id)) === 'failed', { timeoutMs: 30_000, what: 'the rerun to time out' });
    const rows = jobStatusView((await queue.getJob(id))!, 'work', 'failed', (await queue.getJobLogs(id)).logs).attempts;
    expect(rows.map((r) => [r.attempt, r.errorClass, r.worker])).toEqual([
      [1, 'stalled', 'worker-1'],
      [1, 'timeout', 'worker-2'],
    ]);
  });

  it('logs a stall within maxStalls as moved back to wait, and the one past it as failing the job', async () => {
    const { queue, id } = await loseItsWorkerTwice(1);
    await waitUntil(async () => (await queue.getJobState(id)) === 'failed', { timeoutMs: 20_000, what: 'the job to fail as stalled' });
    /** The stall lines the workers logged about the job, in the order of their stall counts. */
    const stallLines = () =>
      workers
        .flatMap((w) => w.stdout().split('\n'))
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as { msg: string; job_id?: string; stalls?: number; max_stalls?: number })
        .filter((line) => line.job_id === id && line.msg.startsWith('job stalled'))
        .sort((a, b) => (a.stalls ?? 0) - (b.stalls ?? 0));
    await waitUntil(async () => stallLines().length === 2, { timeoutMs: 10_000, what: 'both stalls to be logged' });
    const [reclaimed, failed] = stallLines();
    expect(reclaimed).toMatchObject({ msg: 'job stalled: its lock expired and it was moved back to wait', stalls: 1, max_stalls: 1 });
    expect(failed).toMatchObject({ msg: expect.stringContaining('fails as stalled'), stalls: 2, max_stalls: 1 });
    expect(failed?.msg).not.toContain('moved back to wait');
  });

  it('gives a job redriven after it failed as stalled its maxStalls again', async () => {
    const { queue, id, lease, env, loseItsWorker } = await loseItsWorkerTwice(1);
    await waitUntil(async () => (await queue.getJobState(id)) === 'failed', { timeoutMs: 20_000, what: 'the job to fail as stalled' });
    const config = loadConfig(env);
    const producer = createApiRedis(redisUrl(), 'bullpen:test');
    const lanes = new LaneRegistry(config, producer, createLogger('api', 'error'));
    cleanups.push(async () => {
      await lanes.close();
      producer.disconnect();
    });
    await waitUntil(async () => producer.status === 'ready', { what: 'the producer connection' });
    const dead = new DeadLetters({ config, redis: producer, guard: new RedisGuard(producer), lanes });
    expect((await dead.redrive('work', 'acme', [id])).results).toEqual([{ id, status: 'redriven' }]);

    // One loss is within maxStalls 1: the job is reclaimed, not failed as stalled at once.
    await loseItsWorker(1);
    await waitUntil(async () => (await lease())?.ats === 2, { timeoutMs: 20_000, what: 'the redriven job to be reclaimed' });
    expect(await queue.getJobState(id)).toBe('active');
  });

  it('reclaims a job as often as maxStalls allows', async () => {
    const { queue, id, lease } = await loseItsWorkerTwice(2);
    await waitUntil(async () => (await lease())?.ats === 3, { timeoutMs: 20_000, what: 'a third start of the job' });
    expect(await queue.getJobState(id)).toBe('active');
    expect((await lease())?.worker).toBe('worker-3');
  });
});
