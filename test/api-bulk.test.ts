// Bulk submission: each item is judged alone, valid items are admitted in order while the lane
// has room, and the per-item results say exactly which items were taken.
import { startTestApi, type TestApi } from '../apps/api/test/harness';

const lanesFile = {
  lanes: {
    tool_call: { concurrency: 1, maxQueueSize: 5 },
    restricted: { concurrency: 1, jobNames: ['noop'] },
    big: { concurrency: 1, maxQueueSize: 1000 },
    small: { concurrency: 1, maxQueueSize: 3 },
    critic: { concurrency: 1 },
  },
};

describe('producer API: bulk submission', () => {
  let api: TestApi;

  beforeEach(async () => {
    // These bulks are about which items are taken. On a contended machine Redis may take longer
    // than the 1 s default bound to add 1,000 jobs (a 503 redis_timeout, which is right there).
    api = await startTestApi({ lanesFile, env: { API_REDIS_TIMEOUT_MS: '10000' } });
  });

  afterEach(async () => {
    await api.stop();
  });

  const bulk = (lane: string, jobs: unknown[]) => api.request('POST', `/v1/lanes/${lane}/jobs/bulk`, { body: { jobs } });

  it('takes the valid items, rejects each invalid one with its own errors, and says which is which', async () => {
    const reply = await bulk('restricted', [
      { name: 'noop', data: { n: 0 } },
      { name: 'noop', priority: 0 },
      'not an object',
      { name: 'cpu' },
      { name: 'noop', delayMs: 1000 },
      { name: 'noop', extra: 1 },
    ]);
    expect(reply.status).toBe(200);
    expect(reply.headers.get('retry-after')).toBeNull();
    expect(reply.body).toMatchObject({ lane: 'restricted', created: 2, replayed: 0, rejected: 0, invalid: 4 });
    expect(reply.body.results).toEqual([
      { index: 0, status: 'created', id: expect.any(String) },
      {
        index: 1,
        status: 'invalid',
        code: 'validation_failed',
        errors: [{ field: 'body.jobs[1].priority', message: 'expected an integer from 1 to 2097151' }],
      },
      { index: 2, status: 'invalid', code: 'validation_failed', errors: [{ field: 'body.jobs[2]', message: 'expected a JSON object' }] },
      {
        index: 3,
        status: 'invalid',
        code: 'job_name_not_allowed',
        errors: [{ field: 'body.jobs[3].name', message: 'expected one of noop' }],
      },
      { index: 4, status: 'created', id: expect.any(String) },
      { index: 5, status: 'invalid', code: 'validation_failed', errors: [{ field: 'body.jobs[5].extra', message: 'unknown field' }] },
    ]);

    expect(await api.backlog('restricted')).toBe(2);
    const first = await api.request('GET', `/v1/lanes/restricted/jobs/${reply.body.results[0].id}`);
    expect(first.body).toMatchObject({ state: 'waiting', name: 'noop' });
    const delayed = await api.request('GET', `/v1/lanes/restricted/jobs/${reply.body.results[4].id}`);
    expect(delayed.body.state).toBe('delayed');
  });

  it('admits valid items in order up to the room left and rejects the rest with queue_full', async () => {
    for (let i = 0; i < 2; i++) await api.request('POST', '/v1/lanes/tool_call/jobs', { body: { name: 'noop' } });

    const reply = await bulk('tool_call', [
      { name: 'noop', data: 0 },
      { name: '' },
      { name: 'noop', data: 1 },
      { name: 'noop', data: 2 },
      { name: 'noop', data: 3 },
      { name: 'noop', data: 4 },
    ]);
    expect(reply.status).toBe(200);
    expect(reply.headers.get('retry-after')).toBe('1');
    expect(reply.body.results.map((r: { status: string }) => r.status)).toEqual([
      'created',
      'invalid',
      'created',
      'created',
      'rejected',
      'rejected',
    ]);
    expect(reply.body.results[4]).toEqual({ index: 4, status: 'rejected', code: 'queue_full' });
    expect(reply.body).toMatchObject({ created: 3, rejected: 2, invalid: 1, replayed: 0 });
    expect(await api.backlog('tool_call')).toBe(5);
  });

  it('reports repeated idempotency keys as replays, within the batch and even without room', async () => {
    const earlier = await api.request('POST', '/v1/lanes/tool_call/jobs', { body: { name: 'noop', idempotencyKey: 'a' } });
    for (let i = 0; i < 3; i++) await api.request('POST', '/v1/lanes/tool_call/jobs', { body: { name: 'noop' } });

    const reply = await bulk('tool_call', [
      { name: 'noop', idempotencyKey: 'b' },
      { name: 'noop', idempotencyKey: 'a' },
      { name: 'noop', idempotencyKey: 'b' },
      { name: 'noop', idempotencyKey: 'c' },
    ]);
    const [b, a, bAgain, c] = reply.body.results;
    expect(b).toEqual({ index: 0, status: 'created', id: expect.any(String) });
    expect(a).toEqual({ index: 1, status: 'replayed', id: earlier.body.id });
    expect(bAgain).toEqual({ index: 2, status: 'replayed', id: b.id });
    expect(c).toEqual({ index: 3, status: 'rejected', code: 'queue_full' });
    expect(await api.backlog('tool_call')).toBe(5);
  });

  it("takes no room for items repeating an earlier item's idempotency key, answering them as replays of its job", async () => {
    const reply = await bulk('small', [
      { name: 'noop', idempotencyKey: 'x', data: 0 },
      { name: 'noop', idempotencyKey: 'x', data: 1 },
      { name: 'noop', idempotencyKey: 'x', data: 2 },
      { name: 'noop' },
    ]);
    expect(reply.status).toBe(200);
    expect(reply.headers.get('retry-after')).toBeNull();
    const [first] = reply.body.results;
    expect(reply.body).toEqual({
      lane: 'small',
      created: 2,
      replayed: 2,
      rejected: 0,
      invalid: 0,
      results: [
        { index: 0, status: 'created', id: expect.any(String) },
        { index: 1, status: 'replayed', id: first.id },
        { index: 2, status: 'replayed', id: first.id },
        { index: 3, status: 'created', id: expect.any(String) },
      ],
    });
    expect(await api.backlog('small')).toBe(2);
  });

  it("shares an item's refusal with the items repeating its key, and its replay too, when the lane is full", async () => {
    const earlier = await api.request('POST', '/v1/lanes/small/jobs', { body: { name: 'noop', idempotencyKey: 'x' } });
    for (let i = 0; i < 2; i++) await api.request('POST', '/v1/lanes/small/jobs', { body: { name: 'noop' } });

    const reply = await bulk('small', [
      { name: 'noop', idempotencyKey: 'y' },
      { name: 'noop', idempotencyKey: 'x' },
      { name: 'noop', idempotencyKey: 'y' },
      { name: 'bad name', idempotencyKey: 'z' },
      { name: 'noop', idempotencyKey: 'x' },
    ]);
    expect(reply.status).toBe(200);
    expect(reply.headers.get('retry-after')).toBe('1');
    expect(reply.body).toMatchObject({ created: 0, replayed: 2, rejected: 2, invalid: 1 });
    expect(reply.body.results).toEqual([
      { index: 0, status: 'rejected', code: 'queue_full' },
      { index: 1, status: 'replayed', id: earlier.body.id },
      { index: 2, status: 'rejected', code: 'queue_full' },
      { index: 3, status: 'invalid', code: 'validation_failed', errors: [expect.objectContaining({ field: 'body.jobs[3].name' })] },
      { index: 4, status: 'replayed', id: earlier.body.id },
    ]);
    expect(await api.backlog('small')).toBe(3);
  });

  it('adds one job per idempotency key when bulks repeating the same keys race each other', async () => {
    const keys = ['k0', 'k1', 'k2', 'k3', 'k4'];
    const replies = await Promise.all(
      Array.from({ length: 10 }, (_, b) => bulk('big', Array.from({ length: 20 }, (_, i) => ({ name: 'noop', idempotencyKey: keys[(i + b) % keys.length] })))),
    );
    const idByKey = new Map<string, string>();
    let created = 0;
    for (const [b, reply] of replies.entries()) {
      expect(reply.status).toBe(200);
      expect(reply.body).toMatchObject({ rejected: 0, invalid: 0 });
      expect(reply.body.created + reply.body.replayed).toBe(20);
      created += reply.body.created;
      reply.body.results.forEach((result: { index: number; status: string; id: string }, i: number) => {
        expect(result.index).toBe(i);
        const key = keys[(i + b) % keys.length] as string;
        const seen = idByKey.get(key) ?? result.id;
        idByKey.set(key, seen);
        expect([key, result.id]).toEqual([key, seen]);
      });
    }
    expect(created).toBe(keys.length);
    expect(await api.backlog('big')).toBe(keys.length);
  });

  it('adds 1000 jobs in one call', async () => {
    const jobs = Array.from({ length: 1000 }, (_, i) => ({ name: 'noop', data: { i } }));
    const reply = await bulk('big', jobs);
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({ created: 1000, rejected: 0, invalid: 0 });
    expect(new Set(reply.body.results.map((r: { id: string }) => r.id)).size).toBe(1000);
    expect(await api.backlog('big')).toBe(1000);
  });
});
