// A cancellation of an active job is kept on the job, not only announced: the worker that was
// running it can die before it hears the message, and the job, reclaimed by another worker, must
// still end as cancelled instead of running to the end.
import { existsSync } from 'node:fs';
import { JOB_FIELD, createLaneQueue, createLogger, createRedis, jobKeys, loadConfig, parseLeaseRecord, wrapJobData } from '@bullpen/core';
import { JobAccess } from '../apps/api/src/job-access';
import { LaneRegistry } from '../apps/api/src/lane-registry';
import { createApiRedis, RedisGuard } from '../apps/api/src/redis-guard';
import { cleanupPrefix } from './support/config';
import { redisUrl, testPrefix, waitUntil } from './support/wait';
import { WORKER_MAIN, spawnWorker, writeLanesFile, type WorkerProcess } from './fixtures/worker-process';

describe('cancelling a job whose worker dies', () => {
  const workers: WorkerProcess[] = [];
  const cleanups: Array<() => void | Promise<void>> = [];
  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('ends the job as cancelled when another worker reclaims it', async () => {
    if (!existsSync(WORKER_MAIN)) throw new Error(`${WORKER_MAIN} is missing: run npx tsc -b apps/worker first`);
    const lanes = { lanes: { work: { concurrency: 1, attempts: 3, lockDurationMs: 1000, maxStalls: 2 } } };
    const prefix = testPrefix('cancel');
    const lanesFile = writeLanesFile(lanes);
    const env = { REDIS_URL: redisUrl(), BULLPEN_PREFIX: prefix, LANES_FILE: lanesFile.file };
    const config = loadConfig(env);
    const redis = createRedis(redisUrl(), 'worker', 'bullpen:test');
    const queue = createLaneQueue(config, 'work', redis);
    const producer = createApiRedis(redisUrl(), 'bullpen:test');
    const registry = new LaneRegistry(config, producer, createLogger('api', 'error'));
    cleanups.push(lanesFile.cleanup, () => cleanupPrefix(prefix), async () => {
      await registry.close();
      producer.disconnect();
      await queue.close();
      await redis.quit();
    });
    await waitUntil(async () => producer.status === 'ready', { what: 'the producer connection' });
    const access = new JobAccess({ config, redis: producer, guard: new RedisGuard(producer), lanes: registry });

    const id = (await queue.add('sleep', wrapJobData({ ms: 120_000 }, { v: 1, tenant: 'acme' }))).id!;
    const lease = async () => parseLeaseRecord(await redis.hget(jobKeys(prefix, 'work', id).job, JOB_FIELD.lease));
    const first = spawnWorker({ ...env, WORKER_ID: 'worker-1' });
    workers.push(first);
    await first.started();
    await waitUntil(async () => (await lease())?.ats === 1, { timeoutMs: 20_000, what: 'the first start of the job' });

    // The worker dies; the cancel comes while the job is still active under its lock, and no
    // worker runs it to hear the message.
    first.child.kill('SIGKILL');
    await first.exited;
    expect(await queue.getJobState(id)).toBe('active');
    const outcome = await access.cancel('work', id, 'acme');
    expect(outcome.kind).toBe('cancel_requested');

    const second = spawnWorker({ ...env, WORKER_ID: 'worker-2' });
    workers.push(second);
    await second.started();
    await waitUntil(async () => (await queue.getJobState(id)) === 'failed', { timeoutMs: 30_000, what: 'the reclaimed job to end as cancelled' });
    const job = await queue.getJob(id);
    expect(job?.failedReason).toMatch(/^job cancelled while active/);
    expect(job?.attemptsMade).toBe(1);
  });
});
