// Redis outages: the API answers 503 quickly instead of hanging, and recovers on its own when
// Redis is back; also while Redis refuses commands for a while (a long script: BUSY). And more
// submissions than Redis takes in time: past API_MAX_INFLIGHT_JOBS they wait in the API, before
// anything is sent, and those that cannot go in time are refused as api_overloaded, whose jobs
// were certainly not enqueued. Each test runs its own redis-server so that it can stop, freeze
// (SIGSTOP, to hold a submission in flight) and restart it.
import IORedis from 'ioredis';
import { removeDir, startRedis, type RedisProcess } from './support/redis-server';
import { startTestApi, whenReady, type Reply, type TestApi } from '../apps/api/test/harness';
import { waitUntil } from './support/wait';

const LANE = 'tool_call';

describe('producer API: Redis outages', () => {
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

  const submit = (target: TestApi) => target.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop' } });

  function expectUnavailable(reply: { status: number; elapsedMs: number; body: { code?: string }; headers: Headers }) {
    expect(reply.status).toBe(503);
    expect(reply.body.code).toBe('redis_unavailable');
    expect(reply.headers.get('retry-after')).toBe('1');
    expect(reply.elapsedMs).toBeLessThan(2000);
  }

  it('answers 503 within 2 s while Redis is stopped, then serves again without a restart', async () => {
    api = await startTestApi({ env: { REDIS_URL: redis.url } });
    const before = await submit(api);
    expect(before.status).toBe(201);

    await redis.stop();
    await waitUntil(() => api?.producer.status !== 'ready', { what: 'the producer connection to notice' });
    expectUnavailable(await submit(api));
    expectUnavailable(await api.request('POST', `/v1/lanes/${LANE}/jobs/bulk`, { body: { jobs: [{ name: 'noop' }] } }));
    expectUnavailable(await api.request('GET', `/v1/lanes/${LANE}/jobs/${before.body.id}`));
    expectUnavailable(await api.request('DELETE', `/v1/lanes/${LANE}/jobs/${before.body.id}`));
    expectUnavailable(await api.request('GET', '/v1/lanes'));
    expectUnavailable(await api.request('GET', '/readyz', { key: null }));
    expect((await api.request('GET', '/healthz', { key: null })).status).toBe(200);

    await redis.restart();
    const after = await waitUntil(
      async () => {
        const reply = await submit(api!);
        return reply.status === 201 ? reply : undefined;
      },
      { what: 'submissions to succeed again', timeoutMs: 20_000 },
    );
    expect(after.body.state).toBe('waiting');
    expect((await api.request('GET', '/readyz', { key: null })).status).toBe(200);
  });

  it('answers 503 within 2 s when Redis stops answering but the connection stays open', async () => {
    api = await startTestApi({ env: { REDIS_URL: redis.url } });
    expect((await submit(api)).status).toBe(201);

    redis.child.kill('SIGSTOP');
    const frozen = await submit(api);
    expectUnavailable(frozen);
    expectUnavailable(await api.request('GET', '/readyz', { key: null }));

    redis.child.kill('SIGCONT');
    await waitUntil(async () => (await submit(api!)).status === 201, { what: 'submissions to succeed again', timeoutMs: 20_000 });
  });

  it('answers 503, not 500, while Redis is busy running a long script, and serves once it ends', async () => {
    api = await startTestApi({ env: { REDIS_URL: redis.url } });
    expect((await submit(api)).status).toBe(201);
    const admin = new IORedis(redis.url);
    const looping = new IORedis(redis.url);
    try {
      // Past this many milliseconds Redis answers other commands BUSY instead of queueing them.
      await admin.config('SET', 'lua-time-limit', '100');
      const script = looping.eval('while true do end', 0).catch(() => undefined);
      await waitUntil(() => admin.ping().then(() => false, (err: Error) => err.message.startsWith('BUSY')), {
        what: 'Redis to answer BUSY',
      });
      const busy = await submit(api);
      expect(busy.status).toBe(503);
      expect(busy.body).toMatchObject({ code: 'redis_unavailable', detail: expect.stringMatching(/busy running a long script/) });
      expect((await api.request('POST', `/v1/lanes/${LANE}/jobs/bulk`, { body: { jobs: [{ name: 'noop' }] } })).status).toBe(503);

      await admin.call('SCRIPT', 'KILL');
      await script;
      expect((await submit(api)).status).toBe(201);
    } finally {
      // A failed expectation must not leave Redis looping: nothing else would stop it.
      await admin.call('SCRIPT', 'KILL').catch(() => undefined);
      admin.disconnect();
      looping.disconnect();
    }
  });

  it('starts while Redis is down, answers 503, and serves once Redis comes up', async () => {
    await redis.stop();
    api = await startTestApi({ env: { REDIS_URL: redis.url }, waitForRedis: false });
    expectUnavailable(await submit(api));
    expectUnavailable(await api.request('GET', `/v1/lanes/${LANE}/jobs/some-id`));
    // Saying why, as a wrong host or port would otherwise look like a Redis that is just restarting.
    const refused = await waitUntil(
      async () => {
        const reply = await submit(api!);
        return /ECONNREFUSED/.test(String(reply.body.detail)) ? reply : undefined;
      },
      { what: 'the 503 to name the connection error' },
    );
    expect(refused.body.detail).toBe(`Redis is reconnecting: connect ECONNREFUSED 127.0.0.1:${redis.port}`);

    await redis.restart();
    await whenReady(api.producer);
    const created = await waitUntil(
      async () => {
        const reply = await submit(api!);
        return reply.status === 201 ? reply : undefined;
      },
      { what: 'submissions to succeed', timeoutMs: 20_000 },
    );
    expect((await api.request('GET', `/v1/lanes/${LANE}/jobs/${created.body.id}`)).body.state).toBe('waiting');
  });

  describe('with more jobs on their way to Redis than the API allows', () => {
    const lanesFile = { lanes: { big: { concurrency: 1, maxQueueSize: 100_000 }, critic: { concurrency: 1 } } };

    /** The API with these limits, its lane warmed (BullMQ's scripts loaded), then Redis frozen. */
    async function frozenApi(maxInflightJobs: number, waitMs: number): Promise<TestApi> {
      const started = await startTestApi({
        lanesFile,
        env: { REDIS_URL: redis.url, API_MAX_INFLIGHT_JOBS: String(maxInflightJobs), API_INFLIGHT_WAIT_MS: String(waitMs) },
      });
      api = started;
      expect((await started.request('POST', '/v1/lanes/big/jobs', { body: { name: 'noop' } })).status).toBe(201);
      redis.child.kill('SIGSTOP');
      return started;
    }

    /** One bulk of 100 jobs per tag, all at once; `replies` fills in the order they come back. */
    function sendBulks(target: TestApi, tags: string[]): { sent: Promise<Reply[]>; replies: Reply[] } {
      const replies: Reply[] = [];
      const jobs = (tag: string) => Array.from({ length: 100 }, (_, i) => ({ name: 'noop', data: { tag, i } }));
      const sent = tags.map((tag) =>
        target.request('POST', '/v1/lanes/big/jobs/bulk', { body: { jobs: jobs(tag) } }).then((reply) => {
          replies.push(reply);
          return reply;
        }),
      );
      return { sent: Promise.all(sent), replies };
    }

    it('refuses what does not get room in time with api_overloaded, and enqueues none of it', async () => {
      const target = await frozenApi(150, 300);
      const { sent, replies } = sendBulks(target, ['a', 'b', 'c', 'd']);
      // Room for one bulk of 100 in 150: it waits on the frozen Redis, the others on the API.
      await waitUntil(() => replies.length === 3, { what: 'three bulks refused while the first is in flight', timeoutMs: 5000 });
      redis.child.kill('SIGCONT');
      const all = await sent;

      const taken = all.filter((r) => r.status === 200);
      const refused = all.filter((r) => r.status === 503);
      expect(taken).toHaveLength(1);
      expect(taken[0]!.body).toMatchObject({ created: 100, rejected: 0, invalid: 0 });
      expect(refused).toHaveLength(3);
      for (const reply of refused) {
        expect(reply.body).toMatchObject({ code: 'api_overloaded', status: 503 });
        expect(reply.body.jobIds).toBeUndefined();
        expect(reply.headers.get('retry-after')).toBe('1');
        expect(reply.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      }
      expect(await target.backlog('big')).toBe(101);
      expect(await target.metric('bullpen_api_admission_rejected_total', { lane: 'big', reason: 'api_overloaded' })).toBe(300);
      expect(await target.metric('bullpen_api_jobs_in_flight')).toBe(0);
    });

    it('holds what does not fit in the API, and lets it through in turn when room comes back', async () => {
      const target = await frozenApi(100, 20_000);
      const { sent } = sendBulks(target, ['a', 'b', 'c', 'd', 'e']);
      // One bulk on its way to the frozen Redis; the other four wait in the API, none sent.
      await waitUntil(async () => (await target.metric('bullpen_api_submissions_waiting')) === 4, {
        what: 'four bulks waiting for room',
        timeoutMs: 5000,
      });
      expect(await target.metric('bullpen_api_jobs_in_flight')).toBe(100);
      redis.child.kill('SIGCONT');
      const replies = await sent;

      expect(replies.map((r) => [r.status, r.body.created])).toEqual(Array.from({ length: 5 }, () => [200, 100]));
      expect(await target.backlog('big')).toBe(501);
      expect(await target.metric('bullpen_api_submissions_waiting')).toBe(0);
    });
  });
});
