// More submissions than Redis can take in time: past API_MAX_INFLIGHT_JOBS they wait in the API,
// before anything is sent, and those that cannot go in time are refused as api_overloaded, whose
// jobs were certainly not enqueued; never a redis_timeout for a Redis that is only busy. Each test
// runs its own redis-server, frozen (SIGSTOP) to hold the first submission in flight.
import { removeDir, startRedis, type RedisProcess } from './support/redis-server';
import { startTestApi, type Reply, type TestApi } from '../apps/api/test/harness';
import { waitUntil } from './support/wait';

/** A sample of the API's own /metrics: `name` alone, or `name{...}` with these labels among them. */
async function metric(api: TestApi, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const text = String((await api.request('GET', '/metrics', { key: null })).body);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name} `) && !line.startsWith(`${name}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

const lanesFile = { lanes: { big: { concurrency: 1, maxQueueSize: 100_000 }, critic: { concurrency: 1 } } };
const jobs = (n: number, tag: string) => Array.from({ length: n }, (_, i) => ({ name: 'noop', data: { tag, i } }));

describe('producer API: more jobs on their way to Redis than it allows', () => {
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

  it('refuses what does not get room in time with api_overloaded, and enqueues none of it', async () => {
    api = await startTestApi({
      lanesFile,
      env: { REDIS_URL: redis.url, API_MAX_INFLIGHT_JOBS: '150', API_INFLIGHT_WAIT_MS: '300' },
    });
    const target = api;
    // Warm the lane (BullMQ loads its scripts) so that the frozen call below is the bulk's own.
    expect((await target.request('POST', '/v1/lanes/big/jobs', { body: { name: 'noop' } })).status).toBe(201);

    redis.child.kill('SIGSTOP');
    const replies: Reply[] = [];
    const sent = ['a', 'b', 'c', 'd'].map((tag) =>
      target.request('POST', '/v1/lanes/big/jobs/bulk', { body: { jobs: jobs(100, tag) } }).then((reply) => {
        replies.push(reply);
        return reply;
      }),
    );
    // Room for one bulk of 100 in 150: it waits on the frozen Redis, the others on the API.
    await waitUntil(() => replies.length === 3, { what: 'three bulks refused while the first is in flight', timeoutMs: 5000 });
    redis.child.kill('SIGCONT');
    const all = await Promise.all(sent);

    const refused = all.filter((r) => r.status === 503);
    const taken = all.filter((r) => r.status === 200);
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
    expect(await metric(target, 'bullpen_api_admission_rejected_total', { lane: 'big', reason: 'api_overloaded' })).toBe(300);
    expect(await metric(target, 'bullpen_api_jobs_in_flight')).toBe(0);
  });

  it('holds what does not fit in the API, and lets it through in turn when room comes back', async () => {
    api = await startTestApi({
      lanesFile,
      env: { REDIS_URL: redis.url, API_MAX_INFLIGHT_JOBS: '100', API_INFLIGHT_WAIT_MS: '20000' },
    });
    const target = api;
    expect((await target.request('POST', '/v1/lanes/big/jobs', { body: { name: 'noop' } })).status).toBe(201);

    redis.child.kill('SIGSTOP');
    const sent = ['a', 'b', 'c', 'd', 'e'].map((tag) => target.request('POST', '/v1/lanes/big/jobs/bulk', { body: { jobs: jobs(100, tag) } }));
    // One bulk on its way to the frozen Redis; the other four wait in the API, none sent.
    await waitUntil(async () => (await metric(target, 'bullpen_api_submissions_waiting')) === 4, {
      what: 'four bulks waiting for room',
      timeoutMs: 5000,
    });
    expect(await metric(target, 'bullpen_api_jobs_in_flight')).toBe(100);
    redis.child.kill('SIGCONT');
    const replies = await Promise.all(sent);

    expect(replies.map((r) => [r.status, r.body.created])).toEqual([
      [200, 100],
      [200, 100],
      [200, 100],
      [200, 100],
      [200, 100],
    ]);
    expect(await target.backlog('big')).toBe(501);
    expect(await metric(target, 'bullpen_api_submissions_waiting')).toBe(0);
  });
});
