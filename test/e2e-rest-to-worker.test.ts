// From REST request to handler and back: the API and a worker runtime share one Redis and prefix.
import { createLogger, createRedis, type BullpenConfig } from '@bullpen/core';
import type IORedis from 'ioredis';
import { createApiApp, type ApiApp } from '../apps/api/src/app';
import { listen, type RunningServer } from '../apps/api/src/server';
import { builtinHandlers } from '../apps/worker/src/handlers';
import { HandlerRegistry } from '../apps/worker/src/registry';
import { WorkerRuntime } from '../apps/worker/src/runtime';
import { cleanupPrefix, standaloneUrl, testConfig } from './support/config';
import { waitUntil } from './support/wait';

const KEY = 'e2e-tenant-key-1';

describe('REST to worker', () => {
  let config: BullpenConfig;
  let producer: IORedis;
  let api: ApiApp;
  let server: RunningServer;
  let runtime: WorkerRuntime;

  beforeAll(async () => {
    config = testConfig({ env: { API_KEYS: `acme:${KEY}` } });
    producer = createRedis(standaloneUrl(config), 'producer');
    await waitUntil(() => producer.status === 'ready', { what: 'the producer connection' });
    api = createApiApp({ config, redis: producer, logger: createLogger('api', 'error') });
    server = await listen(api.app, '127.0.0.1', 0);
    const registry = new HandlerRegistry().registerAll(builtinHandlers());
    runtime = new WorkerRuntime({ config, logger: createLogger('worker', 'error'), registry });
    await runtime.start();
  });

  afterAll(async () => {
    await runtime.close(5000);
    await server.close(1000);
    await api.close();
    producer.disconnect();
    await cleanupPrefix(config.prefix);
  });

  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${KEY}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  it('completes a job submitted over REST to each default lane and GET shows its return value', async () => {
    expect(config.laneNames).toEqual(['tool_call', 'file_read', 'file_write', 'critic', 'forecast_model']);
    const submitted = await Promise.all(
      config.laneNames.map(async (lane) => {
        const res = await call('POST', `/v1/lanes/${lane}/jobs`, { name: 'sleep', data: { ms: 20 } });
        expect(res.status).toBe(201);
        expect(res.body).toMatchObject({ lane, name: 'sleep' });
        return { lane, id: String(res.body.id) };
      }),
    );
    for (const { lane, id } of submitted) {
      const job = await waitUntil(
        async () => {
          const res = await call('GET', `/v1/lanes/${lane}/jobs/${id}`);
          return res.body.state === 'completed' ? res.body : undefined;
        },
        { what: `job ${id} in ${lane} to complete` },
      );
      expect(job).toMatchObject({ id, lane, state: 'completed', attemptsMade: 1 });
      expect(job.returnValue).toEqual({ sleptMs: 20 });
    }
  });

  it('fails a job with an unknown name once, and GET says why', async () => {
    const res = await call('POST', '/v1/lanes/critic/jobs', { name: 'no_such_handler', data: {} });
    expect(res.status).toBe(201);
    const job = await waitUntil(async () => {
      const got = await call('GET', `/v1/lanes/critic/jobs/${String(res.body.id)}`);
      return got.body.state === 'failed' ? got.body : undefined;
    });
    expect(job.attemptsMade).toBe(1);
    expect(job.errorClass).toBe('unknown_handler');
    expect(job.failedReason).toBe('no handler registered for job name "no_such_handler" in lane "critic"');
  });
});
