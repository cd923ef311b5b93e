// BullMQ makes a job active in Redis a little before the lane's processor registers its attempt.
// A cancel that comes then is accepted by the API (it sees the job active, marks it and publishes
// the message), and the worker can read the message before the attempt exists to hear it: the job
// must still end as cancelled, not run to the end.
import { createLogger, createRedis } from '@bullpen/core';
import type { Job } from 'bullmq';
import { JobAccess } from '../apps/api/src/job-access';
import { LaneRegistry } from '../apps/api/src/lane-registry';
import { createApiRedis, RedisGuard } from '../apps/api/src/redis-guard';
import { AttemptRunner } from '../apps/worker/src/attempt';
import { defineHandler } from '../apps/worker/src/handler';
import { standaloneUrl } from './support/config';
import { waitUntil } from './support/wait';
import { startWorkerHarness, type WorkerHarness } from './fixtures/worker-harness';

describe('a cancel that comes as the job starts', () => {
  let harness: WorkerHarness | undefined;
  const cleanups: Array<() => void | Promise<void>> = [];
  afterEach(async () => {
    jest.restoreAllMocks();
    await harness?.close();
    harness = undefined;
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('ends the job as cancelled when the worker reads the message before the first attempt registers', async () => {
    let handlerRuns = 0;
    const quick = defineHandler({
      name: 'quick',
      run: () => {
        handlerRuns += 1;
        return { ok: true };
      },
    });
    harness = await startWorkerHarness({ lanesFile: { lanes: { work: { concurrency: 1, attempts: 3 } } }, handlers: [quick] });
    const { config } = harness;
    const producer = createApiRedis(standaloneUrl(config), 'bullpen:test');
    const registry = new LaneRegistry(config, producer, createLogger('api', 'error'));
    cleanups.push(async () => {
      await registry.close();
      producer.disconnect();
    });
    await waitUntil(() => producer.status === 'ready', { what: 'the producer connection' });
    const access = new JobAccess({ config, redis: producer, guard: new RedisGuard(producer), lanes: registry });

    // The cancels that reach the lane's runner, from the runtime's cancel listener.
    const heard = jest.spyOn(AttemptRunner.prototype, 'cancel');
    // The processor is held before the attempt registers: the job is active in Redis, the API
    // cancels it, and the worker reads the message, in that order, every time.
    const process = AttemptRunner.prototype.process;
    const held: { state?: string; outcome?: string } = {};
    jest.spyOn(AttemptRunner.prototype, 'process').mockImplementation(async function (this: AttemptRunner, job: Job, token: string | undefined) {
      const id = job.id!;
      held.state = await job.getState();
      held.outcome = (await access.cancel('work', id, 'acme')).kind;
      await waitUntil(() => heard.mock.calls.some(([jobId]) => jobId === id), { what: 'the worker to read the cancel message' });
      return process.call(this, job, token);
    });

    const id = await harness.add('work', 'quick', {});
    const state = await waitUntil(
      async () => {
        const s = await harness!.queue('work').getJobState(id);
        return s === 'failed' || s === 'completed' ? s : undefined;
      },
      { what: 'the job to end' },
    );

    expect(held).toEqual({ state: 'active', outcome: 'cancel_requested' });
    expect(heard).toHaveReturnedWith(false);
    expect(state).toBe('failed');
    expect(handlerRuns).toBe(0);
    // As an ordinary cancel of a running job ends: a dead letter of class cancelled, not retried.
    const dead = await harness.waitForEvent('job:dead', (e) => e.jobId === id);
    expect(dead).toMatchObject({ reason: 'cancelled', errorClass: 'cancelled', attemptsMade: 1 });
    const job = await harness.queue('work').getJob(id);
    expect(job!.failedReason).toBe('job cancelled while active: cancel requested');
    expect(job!.attemptsMade).toBe(1);
    expect(await harness.attemptRows('work', id)).toEqual([expect.objectContaining({ errorClass: 'cancelled', delayMs: null })]);
    expect(harness.events['job:completed'].filter((e) => e.jobId === id)).toEqual([]);
  });
});
