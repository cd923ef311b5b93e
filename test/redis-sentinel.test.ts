// bullpen behind Sentinel: the API and a worker find the master through a sentinel
// (REDIS_SENTINELS, REDIS_SENTINEL_MASTER), and when the master dies and the sentinel promotes
// the replica they follow it without a restart.
import { spawnApi, spawnWorkerApp, type AppProcess } from './support/prometheus';
import { startRedisSentinel, SENTINEL_MASTER, type RedisSentinelProcess } from './support/redis-sentinel';
import { writeLanesFile } from './fixtures/worker-process';
import { laneJobs } from './support/lane-jobs';
import { testPrefix, waitUntil } from './support/wait';

const KEY = 'sentinel-key';

describe('bullpen behind Redis Sentinel', () => {
  const lanesFile = writeLanesFile({ lanes: { work: { concurrency: 5 } } });
  let redis: RedisSentinelProcess;
  let api: AppProcess;
  let worker: AppProcess;

  beforeAll(async () => {
    redis = await startRedisSentinel();
    const env = {
      REDIS_SENTINELS: redis.sentinelsEnv,
      REDIS_SENTINEL_MASTER: SENTINEL_MASTER,
      BULLPEN_PREFIX: testPrefix('sentinel'),
      LANES_FILE: lanesFile.file,
    };
    [api, worker] = await Promise.all([spawnApi({ ...env, API_KEYS: `acme:${KEY}` }), spawnWorkerApp(env)]);
  }, 90_000);

  afterAll(async () => {
    await Promise.all([api?.kill('SIGKILL'), worker?.kill('SIGKILL')]);
    await redis?.stop();
    lanesFile.cleanup();
  });

  const { submit, completes } = laneJobs(() => api, KEY, 'work');

  it('finds the master through the sentinel and runs jobs there', async () => {
    const { status, body } = await submit();
    expect(status).toBe(201);
    await completes(body.id as string);
    expect(await redis.masterPort()).toBe(redis.master.port);
  });

  it('follows a failover to the promoted replica without restarting the API or the worker', async () => {
    await redis.master.stop(); // SIGKILL
    await waitUntil(async () => (await redis.masterPort()) === redis.replica.port, {
      timeoutMs: 30_000,
      intervalMs: 200,
      what: 'the sentinel to promote the replica',
    });
    // Until the apps reconnect to the new master a submission may get a 503; then it is accepted.
    const accepted = await waitUntil(
      async () => {
        const res = await submit();
        if (res.status !== 201) expect(res.status).toBe(503);
        return res.status === 201 ? res.body.id : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'the API to accept a job on the new master' },
    );
    await completes(accepted as string);
    expect(api.exitCode()).toBeNull();
    expect(worker.exitCode()).toBeNull();
  });
});
