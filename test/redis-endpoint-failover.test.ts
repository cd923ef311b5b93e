// A Redis endpoint that follows the primary (a managed service's DNS name): at a failover the
// replica is promoted and the old primary, still up, becomes its replica, and connections open to
// it stay open. Writes on them are refused with READONLY. The API and a worker, connected through
// such an endpoint, must move to the new primary without a restart, and the API must answer 503
// meanwhile, never 500.
import IORedis from 'ioredis';
import { spawnApi, spawnWorkerApp, type AppProcess } from './support/prometheus';
import { removeDir, startRedis, type RedisProcess } from './support/redis-server';
import { startCuttingProxy, type CuttingProxy } from './support/cutting-proxy';
import { writeLanesFile } from './fixtures/worker-process';
import { laneJobs } from './support/lane-jobs';
import { testPrefix, waitUntil } from './support/wait';

const KEY = 'failover-key';

describe('bullpen through a Redis endpoint that follows the primary', () => {
  const lanesFile = writeLanesFile({ lanes: { work: { concurrency: 5 } } });
  let primary: RedisProcess;
  let replica: RedisProcess;
  let proxy: CuttingProxy;
  let api: AppProcess;
  let worker: AppProcess;

  beforeAll(async () => {
    primary = await startRedis();
    replica = await startRedis(['--replicaof', '127.0.0.1', String(primary.port)]);
    proxy = await startCuttingProxy(primary.port);
    const env = { REDIS_URL: proxy.url, BULLPEN_PREFIX: testPrefix('failover'), LANES_FILE: lanesFile.file };
    [api, worker] = await Promise.all([spawnApi({ ...env, API_KEYS: `acme:${KEY}` }), spawnWorkerApp(env)]);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([api?.kill('SIGKILL'), worker?.kill('SIGKILL')]);
    await proxy?.close();
    for (const redis of [primary, replica]) {
      await redis?.stop();
      if (redis) removeDir(redis.dir);
    }
    lanesFile.cleanup();
  });

  const { submit, state, completes } = laneJobs(() => api, KEY, 'work');

  /** Waits until the replica holds everything the primary has acknowledged. */
  async function replicaCaughtUp(): Promise<void> {
    const [a, b] = [new IORedis(primary.url), new IORedis(replica.url)];
    try {
      await waitUntil(
        async () => {
          const offset = (info: string) => Number(/master_repl_offset:(\d+)/.exec(info)?.[1]);
          return offset(await a.info('replication')) === offset(await b.info('replication'));
        },
        { what: 'the replica to catch up' },
      );
    } finally {
      a.disconnect();
      b.disconnect();
    }
  }

  it('moves to the promoted replica without a restart, answering 503 and never 500 meanwhile', async () => {
    const before = await submit();
    expect(before.status).toBe(201);
    await completes(before.body.id as string);

    // The failover: promote the replica, demote the old primary (it stays up, its clients stay
    // connected), and point the endpoint at the new primary.
    await replicaCaughtUp();
    const [a, b] = [new IORedis(primary.url), new IORedis(replica.url)];
    try {
      await b.replicaof('NO', 'ONE');
      await a.replicaof('127.0.0.1', String(replica.port));
    } finally {
      a.disconnect();
      b.disconnect();
    }
    proxy.switchTo(replica.port);

    const answers: string[] = [];
    const accepted = await waitUntil(
      async () => {
        const res = await submit();
        answers.push(`${res.status} ${res.body.code ?? ''}`.trim());
        return res.status === 201 ? res.body.id : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 100, what: 'the API to accept a job on the new primary' },
    ).catch((err: Error) => {
      throw new Error(`${err.message}; answers: ${[...new Set(answers)].join(', ')}`);
    });
    expect(answers.filter((a) => !a.startsWith('201') && !a.startsWith('503'))).toEqual([]);
    await completes(accepted as string);
    // The job from before the failover is still there, on the new primary.
    expect(await state(before.body.id as string)).toBe('completed');
    expect(api.exitCode()).toBeNull();
    expect(worker.exitCode()).toBeNull();
  });
});
