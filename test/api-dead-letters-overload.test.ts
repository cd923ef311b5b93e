// Redrives and purges of dead letters share API_MAX_INFLIGHT_JOBS with submissions: each batch
// takes its room before it reads or writes anything. Without that, forty redrives of 200 at once
// flooded Redis past the API's 1 s bound and half of them were answered redis_timeout (outcome
// unknown). Redis is frozen (SIGSTOP) to hold a bulk submission in flight, as in api-outage.test.ts.
import { Queue } from 'bullmq';
import { createLogger, laneBacklogKeys, lanePrefix, laneStateKeys, wrapJobData } from '@bullpen/core';
import { DeadLetters } from '../apps/api/src/dead-letters';
import { JobsInFlight } from '../apps/api/src/jobs-in-flight';
import { LaneRegistry } from '../apps/api/src/lane-registry';
import { ProblemError } from '../apps/api/src/problem';
import { RedisGuard } from '../apps/api/src/redis-guard';
import { startTestApi, type Reply, type TestApi } from '../apps/api/test/harness';
import { removeDir, startRedis, type RedisProcess } from './support/redis-server';
import { waitUntil } from './support/wait';

const LANE = 'big';
const lanesFile = { lanes: { big: { concurrency: 1, maxQueueSize: 100_000 }, critic: { concurrency: 1 } } };

/** `n` dead letters of `tenant` in the lane, as bullpen's worker leaves them: in the failed set. */
async function seedDead(api: TestApi, tenant: string, n: number): Promise<string[]> {
  const queue = new Queue(LANE, { connection: api.redis, prefix: lanePrefix(api.config.prefix, LANE) });
  try {
    const jobs = await queue.addBulk(Array.from({ length: n }, (_, i) => ({ name: 'noop', data: wrapJobData({ i }, { v: 1, tenant }) })));
    const ids = jobs.map((job) => String(job.id));
    await api.redis.del(laneBacklogKeys(api.config.prefix, LANE).wait);
    await api.redis.zadd(laneStateKeys(api.config.prefix, LANE).failed, ...ids.flatMap((id, i) => [Date.now() - i, id]));
    return ids;
  } finally {
    await queue.close();
  }
}

const dead = (api: TestApi) => api.redis.zcard(laneStateKeys(api.config.prefix, LANE).failed);

describe('dead-letter redrives and purges under API_MAX_INFLIGHT_JOBS', () => {
  let redis: RedisProcess;
  let api: TestApi | undefined;

  beforeEach(async () => {
    redis = await startRedis();
  });

  afterEach(async () => {
    if (redis.child.signalCode === null) redis.child.kill('SIGCONT');
    await api?.stop();
    api = undefined;
    await redis.stop();
    removeDir(redis.dir);
  });

  /** The API with room for 100 jobs, three dead letters, and a bulk of 100 held in flight by a frozen Redis. */
  async function fullApi(waitMs: number): Promise<{ target: TestApi; ids: string[]; bulk: Promise<Reply> }> {
    const target = await startTestApi({ lanesFile, env: { REDIS_URL: redis.url, API_MAX_INFLIGHT_JOBS: '100', API_INFLIGHT_WAIT_MS: String(waitMs) } });
    api = target;
    const ids = await seedDead(target, 'acme', 3);
    expect((await target.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop' } })).status).toBe(201);
    redis.child.kill('SIGSTOP');
    const bulk = target.request('POST', `/v1/lanes/${LANE}/jobs/bulk`, { body: { jobs: Array.from({ length: 100 }, () => ({ name: 'noop' })) } });
    await waitUntil(async () => (await target.metric('bullpen_api_jobs_in_flight')) === 100, { what: 'the bulk to be in flight', timeoutMs: 5000 });
    return { target, ids, bulk };
  }

  it('refuses a redrive that gets no room in time with api_overloaded, having redriven nothing', async () => {
    const { target, ids, bulk } = await fullApi(300);
    const reply = await target.request('POST', `/v1/lanes/${LANE}/dead/redrive`, { body: { ids } });
    expect(reply.status).toBe(503);
    expect(reply.body).toMatchObject({ code: 'api_overloaded', results: [] });
    expect(reply.body.detail).toMatch(/No dead letter was redriven/);
    expect(reply.headers.get('retry-after')).toBe('1');
    redis.child.kill('SIGCONT');
    expect((await bulk).status).toBe(200);
    expect(await dead(target)).toBe(3);
  });

  it('holds a redrive of all until room comes back, then redrives', async () => {
    const { target, bulk } = await fullApi(20_000);
    const redrive = target.request('POST', `/v1/lanes/${LANE}/dead/redrive`, { body: {} });
    await waitUntil(async () => (await target.metric('bullpen_api_submissions_waiting')) === 1, { what: 'the redrive to wait for room', timeoutMs: 5000 });
    redis.child.kill('SIGCONT');
    expect((await bulk).status).toBe(200);
    const reply = await redrive;
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({ redriven: 3 });
    expect(await dead(target)).toBe(0);
  });

  it('answers a redrive cut short between batches with the results of those done, and leaves the rest dead', async () => {
    const target = await startTestApi({ lanesFile, env: { REDIS_URL: redis.url } });
    api = target;
    const ids = await seedDead(target, 'acme', 4);
    // Room for the first batch of two, none for the second.
    class OneBatch extends JobsInFlight {
      private entered = 0;
      override async enter(jobs: number): Promise<void> {
        this.entered += 1;
        if (this.entered > 1) throw new Error('no room');
        return super.enter(jobs);
      }
    }
    const lanes = new LaneRegistry(target.config, target.producer, createLogger('api', 'error'));
    const deadLetters = new DeadLetters(
      { config: target.config, redis: target.producer, guard: new RedisGuard(target.producer), lanes, inFlight: new OneBatch(1000, 0) },
      { batchSize: 2 },
    );
    try {
      const refusal = await deadLetters.redrive(LANE, 'acme', ids).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(refusal).toBeInstanceOf(ProblemError);
      const problem = (refusal as ProblemError).toProblem();
      expect(problem.code).toBe('api_overloaded');
      expect(problem.results).toEqual(ids.slice(0, 2).map((id) => ({ id, status: 'redriven' })));
      expect(problem.detail).toMatch(/the others were not touched/);
      expect(await dead(target)).toBe(2);
    } finally {
      await lanes.close();
    }
  });
});
