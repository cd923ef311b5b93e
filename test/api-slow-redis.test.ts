// Redis alive but slow, or gone between doing a write and answering it: a write that was sent may
// have been applied, so the 503 must say the outcome is unknown and name the jobs, never claim
// that nothing was enqueued.
import { Job } from 'bullmq';
import { createLogger, createRedis } from '@bullpen/core';
import type IORedis from 'ioredis';
import { LaneRegistry } from '../apps/api/src/lane-registry';
import { ProblemError } from '../apps/api/src/problem';
import { JobProducer } from '../apps/api/src/producer';
import { RedisGuard, RedisTimeoutError, createApiRedis } from '../apps/api/src/redis-guard';
import { startLatencyProxy, startTestApi, type TestApi } from '../apps/api/test/harness';
import { standaloneUrl } from './support/config';
import { startCuttingProxy } from './support/cutting-proxy';
import { startProducerSide, type ProducerSide } from './support/producer';
import { redisUrl, testPrefix, waitUntil } from './support/wait';

/** A guard whose n-th call is sent and applied by Redis, but answered too late. */
class LateGuard extends RedisGuard {
  calls = 0;
  constructor(
    redis: IORedis,
    private readonly lateCall: number,
  ) {
    super(redis);
  }
  override async run<T>(call: () => Promise<T>): Promise<T> {
    this.calls += 1;
    if (this.calls !== this.lateCall) return super.run(call);
    await super.run(call);
    throw new RedisTimeoutError('Redis did not answer within 1000 ms');
  }
}

describe('a write that Redis answers too late', () => {
  let side: ProducerSide;

  beforeAll(async () => {
    side = await startProducerSide();
  });
  afterAll(() => side?.close());

  const context = () => ({ lane: 'tool_call', policy: side.config.lanes.tool_call! });

  it('answers redis_timeout naming the job, which GET can then find', async () => {
    const { config, redis, lanes } = side;
    // Call 1 reserves admission, call 2 is the add.
    const producer = new JobProducer({ config, redis, guard: new LateGuard(redis, 2), lanes });
    const err = await producer.submit(context(), 'acme', { name: 'noop', data: {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProblemError);
    const problem = (err as ProblemError).toProblem();
    expect(problem).toMatchObject({ status: 503, code: 'redis_timeout' });
    expect(problem.detail).toMatch(/may or may not have been enqueued/);
    expect(problem.jobIds).toHaveLength(1);
    // It was applied: the named job is there.
    const job = await Job.fromId(lanes.queue('tool_call'), problem.jobIds![0]!);
    expect(job?.name).toBe('noop');
  });

  it('names every job of a bulk batch whose add timed out', async () => {
    const { config, redis, lanes } = side;
    const producer = new JobProducer({ config, redis, guard: new LateGuard(redis, 2), lanes });
    const err = await producer
      .submitBulk(context(), 'acme', [{ name: 'noop' }, { name: 'noop' }, { name: 9 }])
      .catch((e: unknown) => e);
    const problem = (err as ProblemError).toProblem();
    expect(problem.code).toBe('redis_timeout');
    expect(problem.jobIds).toHaveLength(2);
  });

  it('still says redis_unavailable when the connection was down before anything was sent', async () => {
    const { config, lanes } = side;
    const down = createRedis('redis://127.0.0.1:1', 'producer');
    try {
      const producer = new JobProducer({ config, redis: down, guard: new RedisGuard(down), lanes });
      const err = await producer.submit(context(), 'acme', { name: 'noop', data: {} }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Error);
      expect(err).not.toBeInstanceOf(ProblemError);
      expect((err as Error).name).toBe('UnavailableError');
    } finally {
      down.disconnect();
    }
  });
});

describe('a write whose connection drops before Redis answers', () => {
  let side: ProducerSide;

  beforeAll(async () => {
    side = await startProducerSide();
  });
  afterAll(() => side?.close());

  it('answers redis_timeout naming the job, which Redis did enqueue', async () => {
    const { config, lanes } = side;
    const proxy = await startCuttingProxy(Number(new URL(standaloneUrl(config)).port));
    const proxied = createRedis(proxy.url, 'producer');
    const proxiedLanes = new LaneRegistry(config, proxied, createLogger('api', 'error'));
    /** Loses the reply to the 4th call: the add of the second submission (the first loads BullMQ's scripts). */
    class CuttingGuard extends RedisGuard {
      calls = 0;
      override run<T>(call: () => Promise<T>): Promise<T> {
        this.calls += 1;
        if (this.calls === 4) proxy.cut();
        return super.run(call);
      }
    }
    try {
      await waitUntil(() => proxied.status === 'ready');
      const producer = new JobProducer({ config, redis: proxied, guard: new CuttingGuard(proxied), lanes: proxiedLanes });
      const context = { lane: 'tool_call', policy: config.lanes.tool_call! };
      await producer.submit(context, 'acme', { name: 'noop', data: {} });

      const err = await producer.submit(context, 'acme', { name: 'noop', data: {} }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ProblemError);
      const problem = (err as ProblemError).toProblem();
      expect(problem).toMatchObject({ status: 503, code: 'redis_timeout' });
      expect(problem.jobIds).toHaveLength(1);
      const job = await Job.fromId(lanes.queue('tool_call'), problem.jobIds![0]!);
      expect(job?.name).toBe('noop');
      // Let the connection come back, so that it closes at once rather than after ioredis's grace.
      await proxy.heal();
      await waitUntil(() => proxied.status === 'ready', { what: 'the proxied connection to reconnect' });
    } finally {
      await proxiedLanes.close();
      proxied.disconnect();
      await proxy.close();
    }
  });
});

describe('an answer that arrives while the API is busy past the bound', () => {
  it('is returned, not reported as unknown', async () => {
    const redis = createApiRedis(redisUrl());
    try {
      await waitUntil(() => redis.status === 'ready', { what: 'the producer connection' });
      const guard = new RedisGuard(redis, 50);
      const { call } = await new Promise<{ call: Promise<string> }>((resolve) => {
        // In a setImmediate callback, so that the next thing the event loop does is run its expired
        // timers, before it reads the socket: the bound's timer and Redis's answer are both due.
        setImmediate(async () => {
          const call = guard.run(() => redis.ping());
          // The PING leaves on the next tick (write-coalescing.ts); then the process is busy.
          await new Promise((tick) => process.nextTick(tick));
          const until = Date.now() + 200;
          while (Date.now() < until) {
            // Busy, as an API parsing and validating other requests' large bodies is.
          }
          resolve({ call });
        });
      });
      await expect(call).resolves.toBe('PONG');
    } finally {
      redis.disconnect();
    }
  });
});

describe('API_REDIS_TIMEOUT_MS', () => {
  it('bounds each Redis call of a request: past it the answer is a 503, within it the job is taken', async () => {
    // Every call round-trips in at least 0.6 s: past a bound of 200 ms, well within 5 s.
    const proxy = await startLatencyProxy(new URL(redisUrl()), 300);
    const prefix = testPrefix('slow');
    const apis: TestApi[] = [];
    try {
      for (const timeout of ['200', '5000']) apis.push(await startTestApi({ prefix, env: { REDIS_URL: proxy.url, API_REDIS_TIMEOUT_MS: timeout } }));
      const [bounded, patient] = apis as [TestApi, TestApi];
      const late = await bounded.request('POST', '/v1/lanes/tool_call/jobs', { body: { name: 'noop', idempotencyKey: 'late' } });
      // Its first call, before any write, ran out of time: nothing was sent that could add the job.
      expect([late.status, late.body.code, late.body.detail]).toEqual([503, 'redis_unavailable', 'Redis did not answer within 200 ms']);
      const taken = await patient.request('POST', '/v1/lanes/tool_call/jobs', { body: { name: 'noop', idempotencyKey: 'patient' } });
      expect(taken.status).toBe(201);
      expect((await patient.request('GET', `/v1/lanes/tool_call/jobs/${taken.body.id}`)).status).toBe(200);
    } finally {
      for (const api of apis) await api.stop();
      await proxy.close();
    }
  });
});
