// From REST request to handler and back: the API and a worker runtime share one Redis and prefix.
import type { BullpenConfig } from '@bullpen/core';
import { builtinHandlers } from '../apps/worker/src/handlers';
import { HandlerRegistry } from '../apps/worker/src/registry';
import { startApiAndWorker, type ApiAndWorker } from './support/api-and-worker';
import { testConfig } from './support/config';
import { waitUntil } from './support/wait';

const KEY = 'e2e-tenant-key-1';

describe('REST to worker', () => {
  let config: BullpenConfig;
  let stack: ApiAndWorker;

  beforeAll(async () => {
    config = testConfig({ env: { API_KEYS: `acme:${KEY}` } });
    const registry = new HandlerRegistry().registerAll(builtinHandlers());
    stack = await startApiAndWorker({ config, apiKey: KEY, registry });
  });

  afterAll(() => stack?.close());

  it('completes a job submitted over REST to each default lane and GET shows its return value', async () => {
    expect(config.laneNames).toEqual(['tool_call', 'file_read', 'file_write', 'critic', 'forecast_model']);
    const submitted = await Promise.all(
      config.laneNames.map(async (lane) => {
        const res = await stack.call('POST', `/v1/lanes/${lane}/jobs`, { name: 'sleep', data: { ms: 20 } });
        expect(res.status).toBe(201);
        expect(res.body).toMatchObject({ lane, name: 'sleep' });
        return { lane, id: String(res.body.id) };
      }),
    );
    for (const { lane, id } of submitted) {
      const job = await waitUntil(
        async () => {
          const res = await stack.call('GET', `/v1/lanes/${lane}/jobs/${id}`);
          return res.body.state === 'completed' ? res.body : undefined;
        },
        { what: `job ${id} in ${lane} to complete` },
      );
      expect(job).toMatchObject({ id, lane, state: 'completed', attemptsMade: 1 });
      expect(job.returnValue).toEqual({ sleptMs: 20 });
    }
  });

  it('fails a job with an unknown name once, and GET says why', async () => {
    const res = await stack.call('POST', '/v1/lanes/critic/jobs', { name: 'no_such_handler', data: {} });
    expect(res.status).toBe(201);
    const job = await waitUntil(async () => {
      const got = await stack.call('GET', `/v1/lanes/critic/jobs/${String(res.body.id)}`);
      return got.body.state === 'failed' ? got.body : undefined;
    });
    expect(job.attemptsMade).toBe(1);
    expect(job.errorClass).toBe('unknown_handler');
    expect(job.failedReason).toBe('no handler registered for job name "no_such_handler" in lane "critic"');
  });
});
