// Admission control: a lane never holds more than maxQueueSize jobs not yet started, however many
// submitters race for the last places, through one API or several.
import type IORedis from 'ioredis';
import { admissionGroupsKey, admissionKey, createRedis, jobKeys, releaseAdmission, reserveAdmission } from '@bullpen/core';
import { backlogOf, startLatencyProxy, startTestApi, whenReady, type TestApi } from '../apps/api/test/harness';
import { redisUrl, testPrefix, waitUntil } from './support/wait';

const LANE = 'tool_call';
const MAX = 10;
const lanesFile = { lanes: { [LANE]: { concurrency: 1, maxQueueSize: MAX }, critic: { concurrency: 1 } } };

/** Samples a count until `work` settles; returns the highest value seen. */
async function maxDuring(sample: () => Promise<number>, work: Promise<unknown>): Promise<number> {
  let done = false;
  let highest = 0;
  void work.finally(() => {
    done = true;
  });
  while (!done) highest = Math.max(highest, await sample());
  return Math.max(highest, await sample());
}

describe('producer API: admission control', () => {
  let api: TestApi;

  beforeEach(async () => {
    api = await startTestApi({ lanesFile });
  });

  afterEach(async () => {
    await api.stop();
  });

  const submit = (target: TestApi, body: unknown = { name: 'noop' }) =>
    target.request('POST', `/v1/lanes/${LANE}/jobs`, { body });

  it('rejects every one of 50 concurrent submitters with 429 and Retry-After when the lane is full', async () => {
    for (let i = 0; i < MAX; i++) expect((await submit(api)).status).toBe(201);

    const burst = Promise.all(Array.from({ length: 50 }, () => submit(api)));
    const highest = await maxDuring(() => api.backlog(LANE), burst);
    const replies = await burst;

    for (const reply of replies) {
      expect(reply.status).toBe(429);
      expect(reply.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(reply.headers.get('retry-after')).toBe('1');
      expect(reply.body).toMatchObject({ status: 429, code: 'queue_full' });
    }
    expect(highest).toBe(MAX);
    expect(await api.backlog(LANE)).toBe(MAX);
  });

  /** APIs (one per replica) sharing one prefix, all talking to Redis through a slow link. */
  async function slowReplicas(count: number) {
    const proxy = await startLatencyProxy(new URL(redisUrl()), 15);
    const prefix = testPrefix('adm');
    const replicas: TestApi[] = [];
    for (let i = 0; i < count; i++) replicas.push(await startTestApi({ lanesFile, prefix, env: { REDIS_URL: proxy.url } }));
    const direct: IORedis = createRedis(redisUrl(), 'worker');
    await whenReady(direct);
    return {
      replicas,
      backlog: () => backlogOf(direct, prefix, LANE),
      async stop() {
        direct.disconnect();
        for (const replica of replicas) await replica.stop();
        await proxy.close();
      },
    };
  }

  it('admits exactly the free places when 50 submitters race for them over a slow link to Redis', async () => {
    const slow = await slowReplicas(1);
    const [only] = slow.replicas as [TestApi];
    try {
      for (let i = 0; i < MAX - 3; i++) expect((await submit(only)).status).toBe(201);
      const burst = Promise.all(Array.from({ length: 50 }, () => submit(only)));
      const highest = await maxDuring(slow.backlog, burst);
      const statuses = (await burst).map((r) => r.status);

      expect(statuses.filter((s) => s === 201)).toHaveLength(3);
      expect(statuses.filter((s) => s === 429)).toHaveLength(47);
      expect(highest).toBeLessThanOrEqual(MAX);
      expect(await slow.backlog()).toBe(MAX);
    } finally {
      await slow.stop();
    }
  });

  it('holds the limit across three API replicas submitting at once', async () => {
    const slow = await slowReplicas(3);
    try {
      const burst = Promise.all(Array.from({ length: 51 }, (_, i) => submit(slow.replicas[i % 3] as TestApi)));
      const highest = await maxDuring(slow.backlog, burst);
      const statuses = (await burst).map((r) => r.status);
      expect(statuses.filter((s) => s === 201)).toHaveLength(MAX);
      expect(statuses.filter((s) => s === 429)).toHaveLength(51 - MAX);
      expect(highest).toBeLessThanOrEqual(MAX);
      expect(await slow.backlog()).toBe(MAX);
    } finally {
      await slow.stop();
    }
  });

  it('counts delayed and prioritized jobs against the limit', async () => {
    for (let i = 0; i < MAX / 2; i++) await submit(api, { name: 'noop', delayMs: 60_000 });
    for (let i = 0; i < MAX / 2; i++) await submit(api, { name: 'noop', priority: 2 });
    expect((await submit(api)).status).toBe(429);
  });

  it('admits again once a job leaves the backlog', async () => {
    const ids: string[] = [];
    for (let i = 0; i < MAX; i++) ids.push((await submit(api)).body.id);
    expect((await submit(api)).status).toBe(429);
    expect((await api.request('DELETE', `/v1/lanes/${LANE}/jobs/${ids[0]}`)).status).toBe(200);
    expect((await submit(api)).status).toBe(201);
  });

  it('leaves no reservation behind once the jobs have landed', async () => {
    await Promise.all(Array.from({ length: 20 }, () => submit(api)));
    // Releases are fire-and-forget; the next admission call also drops reservations whose job exists.
    await reserveAdmission(api.redis, { prefix: api.config.prefix, lane: LANE, maxQueueSize: MAX, ids: [] });
    expect(await api.redis.zcard(admissionKey(api.config.prefix, LANE))).toBe(0);
  });

  it('counts a granted reservation against the limit until it expires, so a job still being added keeps its place', async () => {
    const redis = api.redis;
    const prefix = api.config.prefix;
    const first = await reserveAdmission(redis, { prefix, lane: LANE, maxQueueSize: 2, ids: ['a', 'b', 'c'] });
    expect(first).toMatchObject({ granted: 2, backlog: 0 });
    const second = await reserveAdmission(redis, { prefix, lane: LANE, maxQueueSize: 2, ids: ['d'] });
    expect(second).toMatchObject({ granted: 0, backlog: 2 });
    const expired = await reserveAdmission(redis, { prefix, lane: 'critic', maxQueueSize: 1, ids: ['e'], ttlMs: 1 });
    expect(expired.granted).toBe(1);
    // 'e' expires after 1 ms of Redis time; a later call must not count it.
    await waitUntil(async () => (await reserveAdmission(redis, { prefix, lane: 'critic', maxQueueSize: 1, ids: ['f'] })).granted === 1, {
      what: 'the reservation to expire',
    });
  });

  it('reserves jobs added all or nothing as one group that counts for each of them', async () => {
    const { redis } = api;
    const prefix = api.config.prefix;
    const bulk = await reserveAdmission(redis, { prefix, lane: LANE, maxQueueSize: 3, ids: ['a', 'b', 'c', 'd', 'e'], atomic: true });
    expect(bulk).toMatchObject({ granted: 3, backlog: 0 });
    // One member for the three granted jobs, none per job.
    expect(await redis.zrange(admissionGroupsKey(prefix, LANE), 0, -1)).toEqual(['a#3']);
    expect(await redis.zcard(admissionKey(prefix, LANE))).toBe(0);

    // Both kinds count: three places held by the group, one by a job reserved on its own.
    const single = await reserveAdmission(redis, { prefix, lane: LANE, maxQueueSize: 5, ids: ['f', 'g'] });
    expect(single).toMatchObject({ granted: 2, backlog: 3 });
    expect(await reserveAdmission(redis, { prefix, lane: LANE, maxQueueSize: 5, ids: ['h'], atomic: true })).toMatchObject({
      granted: 0,
      backlog: 5,
    });

    releaseAdmission(redis, bulk.reservation);
    await waitUntil(async () => (await redis.zcard(admissionGroupsKey(prefix, LANE))) === 0, { what: 'the group to be given back' });
    expect(await reserveAdmission(redis, { prefix, lane: LANE, maxQueueSize: 5, ids: ['i'], atomic: true })).toMatchObject({
      granted: 1,
      backlog: 2,
    });
  });

  it('drops a group whose first job exists when the decision is close, as the MULTI that added it has run', async () => {
    const { redis } = api;
    const prefix = api.config.prefix;
    expect(await reserveAdmission(redis, { prefix, lane: LANE, maxQueueSize: 2, ids: ['p', 'q'], atomic: true })).toMatchObject({ granted: 2 });
    expect((await reserveAdmission(redis, { prefix, lane: LANE, maxQueueSize: 2, ids: ['r'] })).granted).toBe(0);
    // The group's first job lands (here by hand, where a bulk MULTI would have added it and the rest).
    await redis.hset(jobKeys(prefix, LANE, 'p').job, 'name', 'noop');
    expect(await reserveAdmission(redis, { prefix, lane: LANE, maxQueueSize: 2, ids: ['r'] })).toMatchObject({ granted: 1, backlog: 0 });
    expect(await redis.zcard(admissionGroupsKey(prefix, LANE))).toBe(0);
  });

  it('holds the places of a bulk request with one group reservation until its jobs have landed', async () => {
    const slow = await slowReplicas(1);
    const [only] = slow.replicas as [TestApi];
    const direct: IORedis = createRedis(redisUrl(), 'worker');
    const groups = admissionGroupsKey(only.config.prefix, LANE);
    try {
      await whenReady(direct);
      const jobs = Array.from({ length: 4 }, () => ({ name: 'noop' }));
      const request = only.request('POST', `/v1/lanes/${LANE}/jobs/bulk`, { body: { jobs } });
      const seen = new Set<string>();
      await maxDuring(async () => {
        for (const member of await direct.zrange(groups, 0, -1)) seen.add(member);
        return 0;
      }, request);
      const reply = await request;
      expect(reply.status).toBe(200);
      expect(reply.body).toMatchObject({ created: 4 });
      expect([...seen]).toEqual([`${reply.body.results[0].id}#4`]);
      expect(await direct.zcard(admissionKey(only.config.prefix, LANE))).toBe(0);
      await waitUntil(async () => (await direct.zcard(groups)) === 0, { what: 'the group to be given back' });
      expect(await slow.backlog()).toBe(4);
    } finally {
      direct.disconnect();
      await slow.stop();
    }
  });

  it('answers a repeated idempotency key with its job even when the lane is full', async () => {
    const original = await submit(api, { name: 'noop', idempotencyKey: 'order-42' });
    for (let i = 1; i < MAX; i++) await submit(api);
    expect((await submit(api)).status).toBe(429);

    const again = await submit(api, { name: 'noop', idempotencyKey: 'order-42' });
    expect(again.status).toBe(200);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(again.body).toMatchObject({ id: original.body.id, state: 'waiting' });
    expect((await submit(api, { name: 'noop', idempotencyKey: 'order-43' })).status).toBe(429);
  });
});
