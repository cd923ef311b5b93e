// A redrive or purge of all that Redis fails partway (it restarts, the connection drops) answers
// with what its batches did and the bound on failure times it used, as api_stopping does: sent
// again with that bound, the call does the rest and redrives no job twice. Before, a failure while
// reading the next batch answered redis_unavailable with neither, as if nothing had been done, and
// one during a batch's writes gave the results without the bound: the client could only send `{}`
// again, which redrove once more the jobs the first call had redriven and that had died since.
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import IORedis from 'ioredis';
import { createLogger, lanePrefix, laneBacklogKeys, laneStateKeys, wrapJobData, type RedisClient } from '@bullpen/core';
import { DeadLetters } from '../apps/api/src/dead-letters';
import { JobsInFlight } from '../apps/api/src/jobs-in-flight';
import { LaneRegistry } from '../apps/api/src/lane-registry';
import { ProblemError, type Problem } from '../apps/api/src/problem';
import { RedisGuard, createApiRedis } from '../apps/api/src/redis-guard';
import { cleanupPrefix, testConfig } from './support/config';
import { startCuttingProxy, type CuttingProxy } from './support/cutting-proxy';
import { redisUrl, testPrefix, waitUntil } from './support/wait';

const LANE = 'big';
const TENANT = 'acme';
const lanesFile = { lanes: { big: { concurrency: 1 } } };
const SEEDED = 6;

/** `n` dead letters of TENANT in the lane, one failure time each, newest first in the returned order. */
async function seedDead(redis: IORedis, prefix: string, n: number): Promise<string[]> {
  const queue = new Queue(LANE, { connection: redis, prefix: lanePrefix(prefix, LANE) });
  try {
    const jobs = await queue.addBulk(Array.from({ length: n }, (_, i) => ({ name: 'noop', data: wrapJobData({ i }, { v: 1, tenant: TENANT }) })));
    const ids = jobs.map((job) => String(job.id));
    await redis.del(laneBacklogKeys(prefix, LANE).wait);
    const now = Date.now();
    await redis.zadd(laneStateKeys(prefix, LANE).failed, ...ids.flatMap((id, i) => [now - i, id]));
    return ids;
  } finally {
    await queue.close();
  }
}

/** Calls `atSecond` when the second batch of a walk takes its room, before it reads anything. */
class SecondBatchHook extends JobsInFlight {
  private entered = 0;
  constructor(private readonly atSecond: () => void) {
    super(1000, 0);
  }
  override enter(jobs: number): Promise<void> {
    this.entered += 1;
    if (this.entered === 2) this.atSecond();
    return super.enter(jobs);
  }
}

async function refusalOf(call: Promise<unknown>): Promise<Problem> {
  const refusal = await call.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(refusal).toBeInstanceOf(ProblemError);
  return (refusal as ProblemError).toProblem();
}

describe('a redrive or purge of all that Redis fails partway', () => {
  let redis: IORedis;
  let prefix: string;
  let proxy: CuttingProxy;
  let proxied: RedisClient;
  let lanes: LaneRegistry;
  let failedKey: string;

  beforeEach(async () => {
    prefix = testPrefix('blip');
    failedKey = laneStateKeys(prefix, LANE).failed;
    redis = new IORedis(redisUrl(), { maxRetriesPerRequest: 3 });
    proxy = await startCuttingProxy(Number(new URL(redisUrl()).port));
    proxied = createApiRedis(proxy.url);
    await waitUntil(() => proxied.status === 'ready', { what: 'the proxied connection' });
    lanes = new LaneRegistry(testConfig({ lanesFile, prefix }), proxied, createLogger('api', 'error'));
  });
  afterEach(async () => {
    await lanes.close();
    proxied.disconnect();
    await proxy.close();
    redis.disconnect();
    await cleanupPrefix(prefix);
  });

  /** Redis back; the claims the cut-off batch could not give back removed, as their expiry would. */
  async function redisBack(): Promise<void> {
    await proxy.heal();
    await waitUntil(() => proxied.status === 'ready', { what: 'the proxied connection to reconnect' });
    const claims = await redis.keys(`${prefix}:*dead-claim`);
    if (claims.length > 0) await redis.del(...claims);
  }

  function deadLetters(inFlight?: JobsInFlight): DeadLetters {
    const config = testConfig({ lanesFile, prefix });
    return new DeadLetters({ config, redis: proxied, guard: new RedisGuard(proxied, 500), lanes, ...(inFlight ? { inFlight } : {}) }, { batchSize: 2 });
  }

  for (const where of ['reading the next batch', "writing a batch's redrives"] as const) {
    it(`answers with the results so far and failedBefore when Redis fails ${where}, and the call sent again with it redrives no job twice`, async () => {
      const ids = await seedDead(redis, prefix, SEEDED);
      // A worker that fails every job it takes, as the lane's did: each job redriven dies again.
      const runs = new Map<string, number>();
      const connection = new IORedis(redisUrl(), { maxRetriesPerRequest: null });
      const worker = new Worker(
        LANE,
        async (job) => {
          runs.set(String(job.id), (runs.get(String(job.id)) ?? 0) + 1);
          throw new UnrecoverableError('still broken');
        },
        { connection, prefix: lanePrefix(prefix, LANE) },
      );
      worker.on('error', () => undefined);
      try {
        const cut =
          where === 'reading the next batch'
            ? () => proxy.cut()
            : // The first write of the second batch is its first claim.
              () => proxy.cutAfter((request) => request.includes('dead-claim'));
        const problem = await refusalOf(deadLetters(new SecondBatchHook(cut)).redrive(LANE, TENANT));
        expect(problem).toMatchObject({
          status: 503,
          code: where === 'reading the next batch' ? 'redis_unavailable' : 'redis_timeout',
          // Newest first: the first batch is the first two seeded.
          results: ids.slice(0, 2).map((id) => ({ id, status: 'redriven' })),
        });
        const { failedBefore } = problem;
        expect(Number.isSafeInteger(failedBefore)).toBe(true);
        expect(problem.detail).toContain('The 2 dead letters listed in results were looked at before (2 redriven)');
        expect(problem.detail).toContain(`Send it again with failedBefore ${failedBefore} to redrive the rest`);
        if (where !== 'reading the next batch') expect(problem.detail).toContain('the 2 dead letters of the batch under way may or may not have been redriven');

        // The two redriven jobs die again, and are dead letters once more.
        await waitUntil(async () => (await redis.zcard(failedKey)) === SEEDED, { what: 'the redriven jobs to die again' });
        await redisBack();
        const rest = await deadLetters().redrive(LANE, TENANT, undefined, failedBefore);
        expect(rest).toMatchObject({ redriven: SEEDED - 2, notFound: 0, notDead: 0, claimed: 0, failedBefore });
        expect(rest.results).toEqual(ids.slice(2).map((id) => ({ id, status: 'redriven' })));
        // Each dead letter redriven once: the two of the first call are dead again, not back at work.
        expect(await redis.zscore(failedKey, ids[0] as string)).not.toBeNull();
        expect(await redis.zscore(failedKey, ids[1] as string)).not.toBeNull();
        await waitUntil(async () => (await redis.zcard(failedKey)) === SEEDED, { what: 'the rest to die again' });
        expect(Object.fromEntries(runs)).toEqual(Object.fromEntries(ids.map((id) => [id, 1])));
      } finally {
        await worker.close();
        connection.disconnect();
      }
    });
  }

  it('answers a purge that Redis fails between two batches with the results so far and failedBefore', async () => {
    const ids = await seedDead(redis, prefix, SEEDED);
    const problem = await refusalOf(deadLetters(new SecondBatchHook(() => proxy.cut())).purge(LANE, TENANT));
    expect(problem).toMatchObject({ status: 503, code: 'redis_unavailable', results: ids.slice(0, 2).map((id) => ({ id, status: 'purged' })) });
    expect(Number.isSafeInteger(problem.failedBefore)).toBe(true);
    expect(problem.detail).toContain('the others were not touched');
    await redisBack();
    const rest = await deadLetters().purge(LANE, TENANT, undefined, problem.failedBefore);
    expect(rest.results).toEqual(ids.slice(2).map((id) => ({ id, status: 'purged' })));
    expect(await redis.zcard(failedKey)).toBe(0);
  });

  it('answers a redrive of all that Redis fails before any batch with failedBefore and no results', async () => {
    await seedDead(redis, prefix, SEEDED);
    // Redis is gone before the first read.
    proxy.cut();
    await proxied.ping().catch(() => undefined);
    await waitUntil(() => proxied.status !== 'ready', { what: 'the proxied connection to drop' });
    const problem = await refusalOf(deadLetters().redrive(LANE, TENANT));
    expect(problem).toMatchObject({ status: 503, code: 'redis_unavailable', results: [] });
    expect(Number.isSafeInteger(problem.failedBefore)).toBe(true);
    expect(problem.detail).toContain('No dead letter was redriven');
    expect(await redis.zcard(failedKey)).toBe(SEEDED);
    // Let the connection come back, so that it closes at once rather than after ioredis's grace.
    await redisBack();
  });
});
