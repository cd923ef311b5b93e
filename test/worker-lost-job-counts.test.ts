// The counts a worker keeps on a job hash (starts that used no attempt, free rate-limited retries)
// land only on a job that still exists and whose lock the worker still holds. A job removed
// meanwhile (retention, or another worker that took it over and finished it) must not come back as
// a hash with only those fields, which no set lists and no TTL ends; and a job another worker holds
// now keeps that worker's counts.
import { Worker, type Job } from 'bullmq';
import { JOB_FIELD, RateLimitedError, createLaneQueue, createLogger, createRedis, jobKeys, lanePrefix, type RedisClient } from '@bullpen/core';
import type { AttemptDeps } from '../apps/worker/src/attempt-deps';
import { handBack } from '../apps/worker/src/attempt-start';
import { defineHandler } from '../apps/worker/src/handler';
import { cleanupPrefix, testConfig } from './support/config';
import { deferred, redisUrl, testPrefix } from './support/wait';
import { startWorkerHarness, type WorkerHarness } from './fixtures/worker-harness';

const COUNTS = [JOB_FIELD.uncountedStarts, JOB_FIELD.rateLimitedRetries] as const;

describe('a free rate-limited retry of a job the worker no longer holds', () => {
  let harness: WorkerHarness | undefined;
  afterEach(async () => {
    await harness?.close();
    harness = undefined;
  });

  /** Runs one attempt of a job whose handler does `meanwhile` to it and then hits a rate limit, and
   * waits until the worker is done with it. */
  async function rateLimitedAfter(meanwhile: (redis: RedisClient, keys: ReturnType<typeof jobKeys>) => Promise<unknown>): Promise<ReturnType<typeof jobKeys>> {
    const ran = deferred<string>();
    const handler = defineHandler({
      name: 'limited_after',
      run: async (_data, ctx) => {
        await meanwhile(harness!.redis, jobKeys(harness!.config.prefix, ctx.lane, ctx.jobId));
        ran.resolve(ctx.jobId);
        throw new RateLimitedError('429 from the dependency', 50);
      },
    });
    harness = await startWorkerHarness({
      lanesFile: { lanes: { free: { concurrency: 1, attempts: 3, rateLimitedConsumesAttempt: false, backoff: { strategy: 'fixed', baseMs: 10, capMs: 100 } } } },
      handlers: [handler],
    });
    await harness.add('free', 'limited_after', {});
    const id = await ran.promise;
    // Closing waits for the attempt to end, its failure written (or not) included.
    await harness.runtime.close(5000);
    return jobKeys(harness.config.prefix, 'free', id);
  }

  it('brings back no hash of a job removed while it ran', async () => {
    // As when another worker took the job over and finished it, and removeOnComplete removed it.
    const keys = await rateLimitedAfter((redis, k) => redis.del(k.job));
    expect(await harness!.redis.exists(keys.job)).toBe(0);
    expect(await harness!.redis.hmget(keys.job, ...COUNTS)).toEqual([null, null]);
  });

  it('counts nothing on a job whose lock another worker holds now', async () => {
    const keys = await rateLimitedAfter((redis, k) => redis.set(k.lock, 'another-workers-token', 'PX', 60_000));
    expect(await harness!.redis.exists(keys.job)).toBe(1);
    expect(await harness!.redis.hmget(keys.job, ...COUNTS)).toEqual([null, null]);
  });

  it('counts the free retry on a job it still holds', async () => {
    const keys = await rateLimitedAfter(async () => undefined);
    expect(await harness!.redis.hmget(keys.job, ...COUNTS)).toEqual(['1', '1']);
  });
});

describe('a job handed back by a worker that no longer holds it', () => {
  const prefix = testPrefix('handback');
  let redis: RedisClient;
  let worker: Worker;
  let workerConnection: RedisClient;
  let deps: AttemptDeps;
  let seq = 0;

  beforeAll(async () => {
    redis = createRedis(redisUrl(), 'worker', 'bullpen:test');
    const config = testConfig({ prefix, lanesFile: { lanes: { work: { concurrency: 1 } } } });
    // A worker without a processor: the test takes each job itself, under a token of its own.
    workerConnection = redis.duplicate();
    worker = new Worker('work', undefined, { connection: workerConnection, prefix: lanePrefix(prefix, 'work') });
    // handBack reads only these.
    deps = { redis, config, lane: 'work', logger: createLogger('worker', 'error') } as unknown as AttemptDeps;
  });
  // Each test starts from an empty lane: a job one test leaves waiting is not the next one's.
  afterEach(() => cleanupPrefix(prefix));
  afterAll(async () => {
    await worker.close();
    await workerConnection.quit();
    await cleanupPrefix(prefix);
    await redis.quit();
  });

  /** A job taken by this worker under `token`: active, its lock held. */
  async function taken(token: string): Promise<Job> {
    const queue = createLaneQueue(deps.config, 'work', redis);
    try {
      const id = `job-${(seq += 1)}`;
      await queue.add('probe', {}, { jobId: id });
      const job = (await worker.getNextJob(token)) as Job | undefined;
      expect(job?.id).toBe(id);
      return job!;
    } finally {
      await queue.close();
    }
  }

  it('brings back no hash of a job removed meanwhile', async () => {
    const job = await taken('token-1');
    const keys = jobKeys(prefix, 'work', job.id!);
    await redis.del(keys.job);
    expect(await handBack(deps, job, 'token-1')).toBeUndefined();
    expect(await redis.exists(keys.job)).toBe(0);
  });

  it('counts nothing on a job whose lock another worker holds now', async () => {
    const job = await taken('token-1');
    const keys = jobKeys(prefix, 'work', job.id!);
    await redis.set(keys.lock, 'token-2', 'PX', 60_000);
    expect(await handBack(deps, job, 'token-1')).toBeUndefined();
    expect(await redis.hget(keys.job, JOB_FIELD.uncountedStarts)).toBeNull();
  });

  it('counts the start on a job it holds, and puts it back in the wait list', async () => {
    const job = await taken('token-1');
    expect(await handBack(deps, job, 'token-1')).toBeDefined();
    expect(await redis.hget(jobKeys(prefix, 'work', job.id!).job, JOB_FIELD.uncountedStarts)).toBe('1');
    expect(await job.getState()).toBe('waiting');
  });
});
