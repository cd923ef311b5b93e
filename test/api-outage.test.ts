// Redis outages: the API answers 503 quickly instead of hanging, and recovers on its own when
// Redis is back. Each test runs its own redis-server so that it can stop, freeze and restart it.
import { removeDir, startRedis, type RedisProcess } from './support/redis-server';
import { startTestApi, whenReady, type TestApi } from '../apps/api/test/harness';
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

  it('starts while Redis is down, answers 503, and serves once Redis comes up', async () => {
    await redis.stop();
    api = await startTestApi({ env: { REDIS_URL: redis.url }, waitForRedis: false });
    expectUnavailable(await submit(api));
    expectUnavailable(await api.request('GET', `/v1/lanes/${LANE}/jobs/some-id`));

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
});
