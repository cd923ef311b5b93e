// Single-job submissions made in the same turn of the event loop go to Redis together: one
// admission call for all of them and one pipeline of BullMQ adds. Each still gets its own answer,
// and admission still grants room in the order the submissions were made.
import { randomUUID } from 'node:crypto';
import { Job } from 'bullmq';
import { admissionKey } from '@bullpen/core';
import { ProblemError } from '../apps/api/src/problem';
import { JobProducer } from '../apps/api/src/producer';
import { RedisGuard, RedisOutcomeUnknownError } from '../apps/api/src/redis-guard';
import { BatchedAddError, SubmitBatcher } from '../apps/api/src/submit-batcher';
import { prepareJob } from '../apps/api/src/submission';
import { testConfig } from './support/config';
import { startProducerSide, type ProducerSide } from './support/producer';
import { waitUntil } from './support/wait';

describe('single submissions made in one turn', () => {
  let side: ProducerSide;
  let producer: JobProducer;
  /** The admission calls the producer connection has sent, per lane. */
  const admissionCalls = new Map<string, number>();

  beforeAll(async () => {
    side = await startProducerSide(
      testConfig({ lanesFile: { lanes: { wide: { concurrency: 1 }, small: { concurrency: 1, maxQueueSize: 5 } } } }),
    );
    const { config, redis, lanes } = side;
    const keys = new Map(['wide', 'small'].map((lane) => [admissionKey(config.prefix, lane), lane]));
    // Observed on the way to Redis, not replaced: every command still goes out.
    const send = redis.sendCommand.bind(redis);
    redis.sendCommand = ((command, stream) => {
      const lane = command.args.map(String).find((arg) => keys.has(arg));
      if (command.name.startsWith('eval') && lane) admissionCalls.set(keys.get(lane)!, (admissionCalls.get(keys.get(lane)!) ?? 0) + 1);
      return send(command, stream);
    }) as typeof redis.sendCommand;
    producer = new JobProducer({ config, redis, guard: new RedisGuard(redis), lanes });
  });
  afterAll(() => side?.close());

  const context = (lane: string) => ({ lane, policy: side.config.lanes[lane]! });

  it('admits 20 jobs with one admission call and answers each with its own job', async () => {
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, (_, i) => producer.submit(context('wide'), 'acme', { name: 'noop', data: { i } })),
    );
    // One call for the turn's 20 jobs; sent one by one, they would have made 20.
    expect(admissionCalls.get('wide')).toBe(1);
    expect(new Set(outcomes.map((o) => o.job.id)).size).toBe(20);
    const queue = side.lanes.queue('wide');
    for (const [i, outcome] of outcomes.entries()) {
      expect(outcome).toMatchObject({ replayed: false, job: { lane: 'wide', name: 'noop', state: 'waiting' } });
      const job = await Job.fromId(queue, outcome.job.id);
      expect(job?.data).toMatchObject({ data: { i }, bullpen: { tenant: 'acme' } });
    }
    // Each admitted job's reservation is given back once it has landed.
    await expect(side.redis.zcard(admissionKey(side.config.prefix, 'wide'))).resolves.toBe(0);
  });

  it('fails every submission of a batch it could not build, and gives their room back, rather than leaving them hanging', async () => {
    const { config, redis, lanes } = side;
    const batcher = new SubmitBatcher({ config, redis, guard: new RedisGuard(redis), lanes });
    const policy = config.lanes.wide!;
    const prepared = () => prepareJob({ name: 'noop', data: {} }, { tenant: 'acme', policy, jobId: randomUUID(), nowMs: Date.now() });
    const boom = () => {
      throw new Error('boom');
    };
    const settled = await Promise.allSettled([batcher.add('wide', policy, prepared(), boom), batcher.add('wide', policy, prepared())]);
    for (const s of settled) {
      expect(s.status).toBe('rejected');
      const err = (s as PromiseRejectedResult).reason as BatchedAddError;
      expect(err).toBeInstanceOf(BatchedAddError);
      expect({ step: err.step, cause: (err.cause as Error).message }).toEqual({ step: 'add', cause: 'boom' });
    }
    await waitUntil(async () => (await redis.zcard(admissionKey(config.prefix, 'wide'))) === 0, { what: 'the reservations to be given back' });
  });

  it('fails only the job whose options BullMQ refuses, and does not report the others as maybe enqueued', async () => {
    const { config, redis, lanes } = side;
    const batcher = new SubmitBatcher({ config, redis, guard: new RedisGuard(redis), lanes });
    const policy = config.lanes.wide!;
    const prepared = (priority?: number) =>
      prepareJob({ name: 'noop', data: {}, ...(priority ? { priority } : {}) }, { tenant: 'acme', policy, jobId: randomUUID(), nowMs: Date.now() });
    // BullMQ refuses a priority past its limit before sending anything; the schema keeps the API's
    // own requests below it, so the refused job stands for any job BullMQ will not take.
    const jobs = [prepared(), prepared(2 ** 21), prepared(), prepared(3)];
    const settled = await Promise.allSettled(jobs.map((job) => batcher.add('wide', policy, job)));
    expect(settled.map((s) => s.status)).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    const refused = (settled[1] as PromiseRejectedResult).reason as BatchedAddError;
    expect(refused).toBeInstanceOf(BatchedAddError);
    expect(refused.cause).not.toBeInstanceOf(RedisOutcomeUnknownError);
    expect((refused.cause as Error).message).toMatch(/Priority should be between/);
    const queue = side.lanes.queue('wide');
    for (const i of [0, 2, 3]) expect(await Job.fromId(queue, jobs[i]!.jobId)).toBeDefined();
    expect(await Job.fromId(queue, jobs[1]!.jobId)).toBeUndefined();
    await waitUntil(async () => (await redis.zcard(admissionKey(config.prefix, 'wide'))) === 0, { what: 'the reservations to be given back' });
  });

  it('grants room in the order the submissions were made and refuses the rest with queue_full', async () => {
    const settled = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => producer.submit(context('small'), 'acme', { name: 'noop', data: { i } })),
    );
    expect(admissionCalls.get('small')).toBe(1);
    expect(settled.map((s) => s.status)).toEqual([...Array(5).fill('fulfilled'), ...Array(3).fill('rejected')]);
    for (const s of settled.slice(5)) {
      const err = (s as PromiseRejectedResult).reason;
      expect(err).toBeInstanceOf(ProblemError);
      expect((err as ProblemError).toProblem()).toMatchObject({ status: 429, code: 'queue_full' });
    }
    expect(await side.lanes.queue('small').count()).toBe(5);
  });
});
