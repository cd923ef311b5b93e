// A worker process killed with SIGKILL in the middle of a job: its lock expires, another worker's
// stalled checker moves the job back to wait, that worker reclaims it and completes it, and the
// stall and the reclaim are reported with the worker that died, in its events and in the lane
// stream (for the exporter's lifecycle log). The second worker is an in-process runtime, so its
// typed events can be observed.
import { existsSync } from 'node:fs';
import {
  JOB_FIELD,
  LANE_EVENT,
  createLaneQueue,
  createRedis,
  decodeLaneEvent,
  jobKeys,
  laneEventsKey,
  loadConfig,
  parseLeaseRecord,
  wrapJobData,
} from '@bullpen/core';
import { redisUrl, testPrefix, waitUntil } from './support/wait';
import { startWorkerHarness, type WorkerHarness } from './fixtures/worker-harness';
import { WORKER_MAIN, spawnWorker, writeLanesFile, type WorkerProcess } from './fixtures/worker-process';

describe('recovery from a crashed worker', () => {
  let harness: WorkerHarness | undefined;
  let doomed: WorkerProcess | undefined;
  const cleanups: Array<() => void | Promise<void>> = [];
  afterEach(async () => {
    await doomed?.stop('SIGKILL');
    await harness?.close();
    harness = undefined;
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('reclaims the job of a worker killed mid-job once its lock expires, completes it, and reports the stall and the reclaim', async () => {
    if (!existsSync(WORKER_MAIN)) throw new Error(`${WORKER_MAIN} is missing: run npx tsc -b apps/worker first`);
    const lanes = { lanes: { work: { concurrency: 1, attempts: 3, lockDurationMs: 2000 } } };
    const prefix = testPrefix('crash');
    const lanesFile = writeLanesFile(lanes);
    cleanups.push(lanesFile.cleanup);
    const env = { REDIS_URL: redisUrl(), BULLPEN_PREFIX: prefix, LANES_FILE: lanesFile.file };
    const producerConfig = loadConfig(env);
    const redis = createRedis(redisUrl(), 'worker', 'bullpen:test');
    const queue = createLaneQueue(producerConfig, 'work', redis);
    cleanups.push(async () => {
      await queue.close();
      await redis.quit();
    });

    doomed = spawnWorker({ ...env, WORKER_ID: 'doomed-worker' });
    await doomed.started();
    const sleepMs = 2500; // longer than the lock: only lock renewal keeps a live worker's lease
    const id = (await queue.add('sleep', wrapJobData({ ms: sleepMs }, { v: 1, tenant: 'acme' }))).id!;
    // Once the job has run a second its lease is on record: the worker that dies can be named.
    const lease = await waitUntil(async () => parseLeaseRecord(await redis.hget(jobKeys(prefix, 'work', id).job, JOB_FIELD.lease)), {
      what: 'the lease of the running job',
    });
    expect(lease).toEqual({ ats: 1, worker: 'doomed-worker' });
    doomed.child.kill('SIGKILL');
    expect(await doomed.exited).toBe('SIGKILL');
    expect(await queue.getJobState(id)).toBe('active'); // nobody has noticed yet

    harness = await startWorkerHarness({ lanesFile: lanes, env: { BULLPEN_PREFIX: prefix, WORKER_ID: 'rescuer' } });
    const completed = await harness.waitForEvent('job:completed', (e) => e.jobId === id, 30_000);
    const stalled = harness.events['job:stalled'].find((e) => e.jobId === id);
    const reclaimed = harness.events['job:reclaimed'].find((e) => e.jobId === id);
    const job = (await queue.getJob(id))!;

    // The stall event names the dead worker when its lease is still on record when the event is
    // handled; under load the rescuer may have leased the job again by then (documented on the
    // event), so only the reclaim, read at the new start, must always name it.
    expect(stalled).toMatchObject({ lane: 'work', jobId: id, workerId: 'rescuer', at: expect.any(Number) });
    expect([undefined, 'doomed-worker']).toContain(stalled?.previousWorker);
    expect(reclaimed).toMatchObject({ jobId: id, attempt: 1, workerId: 'rescuer', previousWorker: 'doomed-worker', lostStarts: 1 });
    expect(reclaimed!.at).toBeGreaterThanOrEqual(stalled!.at);
    expect(completed.workerId).toBe('rescuer');
    expect(await job.getState()).toBe('completed');
    expect(job.returnvalue).toEqual({ sleptMs: sleepMs });
    expect(job.attemptsMade).toBe(1); // the lost start used no attempt
    expect(job.attemptsStarted).toBe(2);
    expect(job.processedBy).toBe('rescuer');
    // The rescuer wrote the row of the lost start; the start it reran waited from the enqueue,
    // through the lost lease and the lock's expiry, not from the moment the stall was found.
    expect((await queue.getJobLogs(id)).logs.map((line) => JSON.parse(line) as Record<string, unknown>)).toEqual([
      expect.objectContaining({ type: 'attempt', attempt: 1, errorClass: 'stalled', worker: 'doomed-worker', delayMs: null }),
    ]);
    expect(completed.waitMs).toBeGreaterThanOrEqual(lanes.lanes.work.lockDurationMs);
    const stream = await waitUntil(
      async () => {
        const entries = await redis.xrange(laneEventsKey(prefix, 'work'), '-', '+');
        const found = entries.map(([, fields]) => decodeLaneEvent(fields)).filter((e) => e.event === LANE_EVENT.reclaimed);
        return found.length > 0 ? found : undefined;
      },
      { what: 'the bp:reclaimed entry' },
    );
    expect(stream).toEqual([
      { event: LANE_EVENT.reclaimed, jobId: id, name: 'sleep', tenant: 'acme', attempt: 1, worker: 'rescuer', previousWorker: 'doomed-worker', lostStarts: 1 },
    ]);
  });
});
