// Redis replicates asynchronously: a job the primary acknowledged is lost if a failover promotes a
// replica that did not have it yet, though the API answered 201. With API_REDIS_WAIT_REPLICAS the
// API waits (Redis's WAIT) until that many replicas hold a submission's jobs before its 201, and
// answers redis_timeout, naming the jobs, when they do not confirm in time.
import IORedis from 'ioredis';
import { jobKeys } from '@bullpen/core';
import { startTestApi, type TestApi } from '../apps/api/test/harness';
import { removeDir, startRedis, type RedisProcess } from './support/redis-server';
import { waitUntil } from './support/wait';

const LANE = 'tool_call';

describe('producer API: jobs on the replicas before the 201', () => {
  let primary: RedisProcess;
  let replica: RedisProcess;
  let replicaClient: IORedis;
  const apis: TestApi[] = [];

  beforeAll(async () => {
    primary = await startRedis();
    replica = await startRedis(['--replicaof', '127.0.0.1', String(primary.port)]);
    replicaClient = new IORedis(replica.url);
    await waitUntil(async () => /master_link_status:up/.test(await replicaClient.info('replication')), { what: 'the replica to sync' });
  });

  afterEach(async () => {
    if (replica.child.signalCode === null) replica.child.kill('SIGCONT');
    await Promise.all(apis.splice(0).map((api) => api.stop()));
  });

  afterAll(async () => {
    replicaClient?.disconnect();
    for (const redis of [replica, primary]) {
      await redis?.stop();
      if (redis) removeDir(redis.dir);
    }
  });

  async function start(env: Record<string, string> = {}): Promise<TestApi> {
    const api = await startTestApi({ env: { REDIS_URL: primary.url, ...env } });
    apis.push(api);
    return api;
  }

  const onReplica = (api: TestApi, id: string) => replicaClient.exists(jobKeys(api.config.prefix, LANE, id).job);

  it('answers 201 once the replica holds the job, and redis_timeout when it does not confirm in time', async () => {
    const api = await start({ API_REDIS_WAIT_REPLICAS: '1', API_REDIS_WAIT_TIMEOUT_MS: '300' });
    const created = await api.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop' } });
    expect(created.status).toBe(201);
    expect(await onReplica(api, created.body.id)).toBe(1);

    // The replica stops acknowledging (frozen): the primary takes the jobs, the replicas do not confirm.
    replica.child.kill('SIGSTOP');
    const single = await api.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop', idempotencyKey: 'once' } });
    expect(single.status).toBe(503);
    expect(single.body).toMatchObject({ code: 'redis_timeout', jobIds: [expect.any(String)] });
    expect(single.body.detail).toMatch(/only 0 of 1 replicas confirmed it within 300 ms \(API_REDIS_WAIT_REPLICAS\)/);
    expect(single.headers.get('retry-after')).toBe('1');
    const [jobId] = single.body.jobIds as string[];
    expect((await api.request('GET', `/v1/lanes/${LANE}/jobs/${jobId}`)).status).toBe(200);

    const bulk = await api.request('POST', `/v1/lanes/${LANE}/jobs/bulk`, { body: { jobs: [{ name: 'noop' }, { name: 'noop' }] } });
    expect(bulk.status).toBe(503);
    expect(bulk.body).toMatchObject({ code: 'redis_timeout', jobIds: [expect.any(String), expect.any(String)] });

    // Replicating again: a retry with the same idempotency key answers with the job, now replicated.
    replica.child.kill('SIGCONT');
    const retried = await waitUntil(
      async () => {
        const reply = await api.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop', idempotencyKey: 'once' } });
        return reply.status === 200 ? reply : undefined;
      },
      { what: 'the retry to be answered' },
    );
    expect(retried.body.id).toBe(jobId);
    expect(await onReplica(api, jobId as string)).toBe(1);
  });

  it('names the job Redis answered, the original one of a replayed idempotency key, when the replicas do not confirm', async () => {
    const api = await start({ API_REDIS_WAIT_REPLICAS: '1', API_REDIS_WAIT_TIMEOUT_MS: '300' });
    const original = await api.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop', idempotencyKey: 'known' } });
    expect(original.status).toBe(201);
    const originalId = original.body.id as string;

    replica.child.kill('SIGSTOP');
    const single = await api.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop', idempotencyKey: 'known' } });
    expect(single.status).toBe(503);
    expect(single.body).toMatchObject({ code: 'redis_timeout', jobIds: [originalId] });
    expect(single.body.detail).toContain(`job ${originalId} `);

    const bulk = await api.request('POST', `/v1/lanes/${LANE}/jobs/bulk`, {
      body: { jobs: [{ name: 'noop', idempotencyKey: 'new' }, { name: 'noop', idempotencyKey: 'known' }] },
    });
    expect(bulk.status).toBe(503);
    expect(bulk.body).toMatchObject({ code: 'redis_timeout', jobIds: [expect.any(String), originalId] });
    // Every job named is one a GET finds, the new one included.
    for (const id of bulk.body.jobIds as string[]) expect((await api.request('GET', `/v1/lanes/${LANE}/jobs/${id}`)).status).toBe(200);
  });

  it('answers 201 on the primary alone by default', async () => {
    const api = await start();
    replica.child.kill('SIGSTOP');
    expect((await api.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop' } })).status).toBe(201);
    const bulk = await api.request('POST', `/v1/lanes/${LANE}/jobs/bulk`, { body: { jobs: [{ name: 'noop' }] } });
    expect(bulk.status).toBe(200);
    expect(bulk.body.results).toEqual([expect.objectContaining({ status: 'created' })]);
  });
});
