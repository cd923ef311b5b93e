// Idempotency keys: a repeated key returns the original job, never a second one, also when the
// duplicates arrive at the same instant; keys are scoped per tenant and lane.
import { Worker } from 'bullmq';
import { createRedis, lanePrefix } from '@bullpen/core';
import { startLatencyProxy, startTestApi, KEYS, type TestApi } from '../apps/api/test/harness';
import { redisUrl, waitUntil } from './support/wait';
import { standaloneUrl } from './support/config';

const LANE = 'tool_call';

describe('producer API: idempotency', () => {
  let api: TestApi;

  beforeEach(async () => {
    api = await startTestApi();
  });

  afterEach(async () => {
    await api.stop();
  });

  const submit = (body: unknown, key: string = KEYS.acme, lane = LANE) =>
    api.request('POST', `/v1/lanes/${lane}/jobs`, { body, key });

  it('creates exactly one job from 20 concurrent duplicate submissions', async () => {
    const replies = await Promise.all(
      Array.from({ length: 20 }, () => submit({ name: 'noop', data: { order: 7 }, idempotencyKey: 'order-7' })),
    );
    const created = replies.filter((r) => r.status === 201);
    const replayed = replies.filter((r) => r.status === 200);
    expect(created).toHaveLength(1);
    expect(replayed).toHaveLength(19);
    const id = created[0]?.body.id;
    for (const reply of replayed) {
      expect(reply.headers.get('idempotent-replayed')).toBe('true');
      expect(reply.body).toEqual({ id, lane: LANE, name: 'noop', state: 'waiting', createdAt: created[0]?.body.createdAt });
    }
    expect(created[0]?.headers.get('idempotent-replayed')).toBeNull();
    expect(await api.backlog(LANE)).toBe(1);
  });

  it('creates exactly one job from 20 concurrent duplicates even over a slow link to Redis', async () => {
    // Every duplicate is in flight before the first add lands: a check-then-add would create many.
    const proxy = await startLatencyProxy(new URL(redisUrl()), 15);
    const slow = await startTestApi({ env: { REDIS_URL: proxy.url } });
    try {
      const replies = await Promise.all(
        Array.from({ length: 20 }, () =>
          slow.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop', idempotencyKey: 'slow-1' } }),
        ),
      );
      expect(replies.filter((r) => r.status === 201)).toHaveLength(1);
      expect(replies.filter((r) => r.status === 200)).toHaveLength(19);
      expect(new Set(replies.map((r) => r.body.id)).size).toBe(1);
      expect(await slow.backlog(LANE)).toBe(1);
    } finally {
      await slow.stop();
      await proxy.close();
    }
  });

  it('returns the original job, not a new one, when the key is repeated with a different payload', async () => {
    const first = await submit({ name: 'noop', data: { v: 1 }, idempotencyKey: 'k' });
    const second = await submit({ name: 'noop', data: { v: 2 }, idempotencyKey: 'k' });
    expect(second.status).toBe(200);
    expect(second.body.id).toBe(first.body.id);
    expect(await api.backlog(LANE)).toBe(1);
  });

  it('keeps keys apart per tenant and per lane', async () => {
    const acme = await submit({ name: 'noop', idempotencyKey: 'shared' });
    const beta = await submit({ name: 'noop', idempotencyKey: 'shared' }, KEYS.beta);
    const otherLane = await submit({ name: 'noop', idempotencyKey: 'shared' }, KEYS.acme, 'critic');
    expect([acme.status, beta.status, otherLane.status]).toEqual([201, 201, 201]);
    expect(new Set([acme.body.id, beta.body.id, otherLane.body.id]).size).toBe(3);
  });

  it('replays a key whose job has already completed, with its current state', async () => {
    const first = await submit({ name: 'noop', idempotencyKey: 'done-once' });
    const connection = createRedis(standaloneUrl(api.config), 'worker');
    const worker = new Worker(LANE, async () => 'ok', { connection, prefix: lanePrefix(api.config.prefix, LANE) });
    worker.on('error', () => undefined);
    try {
      await waitUntil(
        async () => (await api.request('GET', `/v1/lanes/${LANE}/jobs/${first.body.id}`)).body.state === 'completed',
        { what: 'the job to complete' },
      );
    } finally {
      await worker.close();
      connection.disconnect();
    }
    const again = await submit({ name: 'noop', idempotencyKey: 'done-once' });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ id: first.body.id, state: 'completed' });
    expect(await api.backlog(LANE)).toBe(0);
  });

  it('keeps naming a cancelled job: a resubmission of its key adds nothing and answers its id as unknown', async () => {
    const first = await submit({ name: 'noop', delayMs: 60_000, idempotencyKey: 'cancelled-once' });
    expect(first.status).toBe(201);
    // Resubmissions racing the cancel: each finds the key naming the job, before or after its removal.
    const [cancel, ...racing] = await Promise.all([
      api.request('DELETE', `/v1/lanes/${LANE}/jobs/${first.body.id}`),
      ...Array.from({ length: 10 }, () => submit({ name: 'noop', delayMs: 60_000, idempotencyKey: 'cancelled-once' })),
    ]);
    expect(cancel?.status).toBe(200);
    const again = await submit({ name: 'noop', delayMs: 60_000, idempotencyKey: 'cancelled-once' });
    for (const reply of [...racing, again]) {
      expect(reply.status).toBe(200);
      expect(reply.headers.get('idempotent-replayed')).toBe('true');
      expect(reply.body.id).toBe(first.body.id);
    }
    expect(again.body).toEqual({ id: first.body.id, lane: LANE, name: 'noop', state: 'unknown', createdAt: null });
    expect((await api.request('GET', `/v1/lanes/${LANE}/jobs/${first.body.id}`)).status).toBe(404);
    expect(await api.backlog(LANE)).toBe(0);
  });

  it('keeps naming a purged dead letter: a resubmission of its key adds nothing', async () => {
    const first = await submit({ name: 'noop', attempts: 1, idempotencyKey: 'purged-once' });
    const connection = createRedis(standaloneUrl(api.config), 'worker');
    const worker = new Worker(
      LANE,
      async () => {
        throw new Error('refused');
      },
      { connection, prefix: lanePrefix(api.config.prefix, LANE) },
    );
    worker.on('error', () => undefined);
    try {
      await waitUntil(
        async () => (await api.request('GET', `/v1/lanes/${LANE}/jobs/${first.body.id}`)).body.state === 'failed',
        { what: 'the job to fail' },
      );
    } finally {
      await worker.close();
      connection.disconnect();
    }
    const purge = await api.request('DELETE', `/v1/lanes/${LANE}/dead`, { body: { ids: [first.body.id] } });
    expect(purge.body.results).toEqual([{ id: first.body.id, status: 'purged' }]);
    const again = await submit({ name: 'noop', attempts: 1, idempotencyKey: 'purged-once' });
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ id: first.body.id, lane: LANE, name: 'noop', state: 'unknown', createdAt: null });
    expect(await api.backlog(LANE)).toBe(0);
  });

  it('takes a key again once it expired, after its job was cancelled', async () => {
    const short = await startTestApi({ lanesFile: { lanes: { [LANE]: { concurrency: 1, idempotencyTtlMs: 300 }, critic: { concurrency: 1 } } } });
    try {
      const first = await short.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop', delayMs: 60_000, idempotencyKey: 'ttl' } });
      expect((await short.request('DELETE', `/v1/lanes/${LANE}/jobs/${first.body.id}`)).status).toBe(200);
      const second = await waitUntil(
        async () => {
          const reply = await short.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop', delayMs: 60_000, idempotencyKey: 'ttl' } });
          return reply.status === 201 ? reply : undefined;
        },
        { what: 'the key to expire' },
      );
      expect(second.body.id).not.toBe(first.body.id);
    } finally {
      await short.stop();
    }
  });
});
