// A worker that cannot renew a running job's lock in time (its process paused, its event loop
// blocked, Redis out of reach past lockDurationMs) loses the job to another worker, which runs it
// again. The first one's handler must stop, and nothing it does may be written into the history
// of a job that is now another worker's.
import { existsSync } from 'node:fs';
import { JOB_FIELD, createLaneQueue, createRedis, jobKeys, loadConfig, parseAttemptLogRow, parseLeaseRecord, wrapJobData } from '@bullpen/core';
import { cleanupPrefix } from './support/config';
import { redisUrl, testPrefix, waitUntil } from './support/wait';
import { FIXTURE_HANDLERS_DIR, WORKER_MAIN, spawnWorker, writeLanesFile, type WorkerProcess } from './fixtures/worker-process';

describe('a worker that lost the lock of a running job', () => {
  const workers: WorkerProcess[] = [];
  const cleanups: Array<() => void | Promise<void>> = [];
  afterEach(async () => {
    for (const w of workers) w.child.kill('SIGCONT');
    await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('stops its handler and records nothing of that attempt', async () => {
    if (!existsSync(WORKER_MAIN)) throw new Error(`${WORKER_MAIN} is missing: run npx tsc -b apps/worker first`);
    const lanes = { lanes: { work: { concurrency: 1, attempts: 3, lockDurationMs: 1000, maxStalls: 2 } } };
    const prefix = testPrefix('lostlock');
    const lanesFile = writeLanesFile(lanes);
    const env = { REDIS_URL: redisUrl(), BULLPEN_PREFIX: prefix, LANES_FILE: lanesFile.file, HANDLERS_DIR: FIXTURE_HANDLERS_DIR };
    const redis = createRedis(redisUrl(), 'worker', 'bullpen:test');
    const queue = createLaneQueue(loadConfig(env), 'work', redis);
    cleanups.push(lanesFile.cleanup, () => cleanupPrefix(prefix), async () => {
      await queue.close();
      await redis.quit();
    });
    const keys = jobKeys(prefix, 'work', 'the-job');
    const lease = async () => parseLeaseRecord(await redis.hget(keys.job, JOB_FIELD.lease));
    const rows = async () => (await redis.lrange(keys.logs, 0, -1)).map((line) => parseAttemptLogRow(line));

    const first = spawnWorker({ ...env, WORKER_ID: 'worker-1' });
    workers.push(first);
    await first.started();
    // Each start sleeps 4 s and then fails: a stale attempt would leave its row behind.
    await queue.add('probe', wrapJobData({ ms: 4000, key: `${prefix}:probe`, fail: true }, { v: 1, tenant: 'acme' }), { jobId: 'the-job' });
    await waitUntil(async () => (await lease())?.ats === 1, { timeoutMs: 20_000, what: 'worker-1 to start the job' });

    first.child.kill('SIGSTOP');
    const second = spawnWorker({ ...env, WORKER_ID: 'worker-2' });
    workers.push(second);
    await second.started();
    await waitUntil(async () => (await lease())?.worker === 'worker-2', { timeoutMs: 20_000, what: 'worker-2 to reclaim the job' });
    first.child.kill('SIGCONT');

    await waitUntil(() => first.stdout().includes('lost the lock of a running job'), { what: 'worker-1 to notice it lost the lock' });
    const notice = first
      .stdout()
      .split('\n')
      .find((line) => line.includes('lost the lock of a running job'));
    expect(JSON.parse(notice!)).toMatchObject({ level: 'warn', job_id: 'the-job', handler_stopped: true });

    // worker-2's attempt fails after its 4 s. Before its row, only the row worker-2 wrote for the
    // start it found stalled (worker-1's): nothing worker-1's own attempt did.
    const history = await waitUntil(async () => {
      const found = await rows();
      return found.some((row) => row?.errorClass !== 'stalled') ? found : undefined;
    }, { timeoutMs: 20_000, what: "worker-2's attempt to be recorded" });
    expect(history.map((row) => [row?.worker, row?.errorClass === 'stalled' ? 'stalled' : 'attempt'])).toEqual([
      ['worker-1', 'stalled'],
      ['worker-2', 'attempt'],
    ]);
  });
});
