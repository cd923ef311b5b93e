// Authentication and tenant isolation: keys from configuration bind requests to a tenant and
// optionally to lanes; another tenant's job is indistinguishable from a missing one.
import { Queue } from 'bullmq';
import { ConfigError, createLogger, createRedis, lanePrefix } from '@bullpen/core';
import { createApiApp } from '../apps/api/src/app';
import { KEYS, startTestApi, type TestApi } from '../apps/api/test/harness';
import { standaloneUrl, testConfig } from './support/config';

const LANE = 'tool_call';

describe('producer API: authentication', () => {
  let api: TestApi;

  beforeEach(async () => {
    api = await startTestApi();
  });

  afterEach(async () => {
    await api.stop();
  });

  it('answers 401 with a Bearer challenge when the key is missing, on every /v1 route', async () => {
    const routes: [string, string][] = [
      ['POST', `/v1/lanes/${LANE}/jobs`],
      ['POST', `/v1/lanes/${LANE}/jobs/bulk`],
      ['GET', `/v1/lanes/${LANE}/jobs/some-id`],
      ['DELETE', `/v1/lanes/${LANE}/jobs/some-id`],
      ['GET', '/v1/lanes'],
      ['POST', `/v1/lanes/${LANE}/pause`],
      ['POST', `/v1/lanes/${LANE}/resume`],
      ['GET', '/v1/no-such-route'],
    ];
    for (const [method, path] of routes) {
      const body = method === 'POST' ? { name: 'noop' } : undefined;
      const reply = await api.request(method, path, { key: null, body });
      expect([method, path, reply.status, reply.body.code]).toEqual([method, path, 401, 'unauthorized']);
      expect(reply.headers.get('www-authenticate')).toMatch(/^Bearer/);
    }
    expect(await api.backlog(LANE)).toBe(0);
  });

  it('answers 401 for a wrong key and for a malformed Authorization header', async () => {
    const wrong = await api.request('POST', `/v1/lanes/${LANE}/jobs`, { key: 'not-a-real-key', body: { name: 'noop' } });
    expect(wrong.status).toBe(401);
    expect(wrong.body.code).toBe('unauthorized');
    expect(wrong.headers.get('www-authenticate')).toContain('invalid_token');
    const basic = await api.request('GET', '/v1/lanes', { key: null, headers: { authorization: `Basic ${KEYS.acme}` } });
    expect(basic.status).toBe(401);
    expect(await api.backlog(LANE)).toBe(0);
  });

  it('lets only operator tenants pause and resume a lane, which stops it for every tenant', async () => {
    const paused = async () => new Queue(LANE, { connection: api.redis, prefix: lanePrefix(api.config.prefix, LANE) }).isPaused();
    const refused = await api.request('POST', `/v1/lanes/${LANE}/pause`, { key: KEYS.beta });
    expect(refused.status).toBe(403);
    expect(refused.body).toMatchObject({ code: 'operator_only', detail: expect.stringContaining('API_OPERATOR_TENANTS') });
    expect(await paused()).toBe(false);

    expect((await api.request('POST', `/v1/lanes/${LANE}/pause`, { key: KEYS.acme })).status).toBe(200);
    expect(await paused()).toBe(true);
    expect((await api.request('POST', `/v1/lanes/${LANE}/resume`, { key: KEYS.beta })).body.code).toBe('operator_only');
    expect(await paused()).toBe(true);
    expect((await api.request('POST', `/v1/lanes/${LANE}/resume`, { key: KEYS.acme })).status).toBe(200);
    expect(await paused()).toBe(false);
  });

  it('lets no tenant pause a lane when the keys name several tenants and no operator is named', async () => {
    const several = await startTestApi({ env: { API_OPERATOR_TENANTS: '' } });
    try {
      for (const key of [KEYS.acme, KEYS.beta]) {
        expect((await several.request('POST', `/v1/lanes/${LANE}/pause`, { key })).body.code).toBe('operator_only');
      }
    } finally {
      await several.stop();
    }
    const single = await startTestApi({ env: { API_KEYS: `acme:${KEYS.acme}`, API_OPERATOR_TENANTS: '' } });
    try {
      expect((await single.request('POST', `/v1/lanes/${LANE}/pause`, { key: KEYS.acme })).status).toBe(200);
    } finally {
      await single.stop();
    }
  });

  it('answers 403 for a lane the key may not use, and lists only the lanes it may', async () => {
    const denied = await api.request('POST', `/v1/lanes/${LANE}/jobs`, { key: KEYS.acmeCriticOnly, body: { name: 'noop' } });
    expect(denied.status).toBe(403);
    expect(denied.body.code).toBe('lane_forbidden');
    expect((await api.request('POST', `/v1/lanes/${LANE}/pause`, { key: KEYS.acmeCriticOnly })).status).toBe(403);
    expect(await api.backlog(LANE)).toBe(0);

    const allowed = await api.request('POST', '/v1/lanes/critic/jobs', { key: KEYS.acmeCriticOnly, body: { name: 'noop' } });
    expect(allowed.status).toBe(201);
    const lanes = await api.request('GET', '/v1/lanes', { key: KEYS.acmeCriticOnly });
    expect(lanes.body.lanes.map((l: { name: string }) => l.name)).toEqual(['critic']);
  });

  it("hides another tenant's job: GET and DELETE answer 404 and the job stays", async () => {
    const created = await api.request('POST', `/v1/lanes/${LANE}/jobs`, { key: KEYS.acme, body: { name: 'noop' } });
    const path = `/v1/lanes/${LANE}/jobs/${created.body.id}`;
    const missing = await api.request('GET', `/v1/lanes/${LANE}/jobs/00000000-0000-4000-8000-000000000000`, { key: KEYS.beta });

    const read = await api.request('GET', path, { key: KEYS.beta });
    expect(read.status).toBe(404);
    expect(read.body).toEqual({ ...missing.body, detail: expect.any(String) });
    expect(read.body.code).toBe('job_not_found');
    const cancel = await api.request('DELETE', path, { key: KEYS.beta });
    expect(cancel.status).toBe(404);
    expect(cancel.body.code).toBe('job_not_found');

    expect((await api.request('GET', path, { key: KEYS.acme })).status).toBe(200);
    // The same tenant through another key sees it too.
    const sameTenant = await api.request('POST', '/v1/lanes/critic/jobs', { key: KEYS.acme, body: { name: 'noop' } });
    expect((await api.request('GET', `/v1/lanes/critic/jobs/${sameTenant.body.id}`, { key: KEYS.acmeCriticOnly })).status).toBe(200);
    expect(await api.backlog(LANE)).toBe(1);
  });

  it('hides jobs added by plain BullMQ producers, which carry no tenant', async () => {
    const queue = new Queue(LANE, { connection: api.redis, prefix: lanePrefix(api.config.prefix, LANE) });
    try {
      const job = await queue.add('plain', { hello: 'world' });
      expect((await api.request('GET', `/v1/lanes/${LANE}/jobs/${job.id}`)).status).toBe(404);
      expect((await api.request('DELETE', `/v1/lanes/${LANE}/jobs/${job.id}`)).status).toBe(404);
    } finally {
      await queue.close();
    }
  });
});

describe('producer API: authentication turned off', () => {
  let api: TestApi;

  beforeEach(async () => {
    api = await startTestApi({ env: { AUTH_DISABLED: 'true', API_KEYS: '' } });
  });

  afterEach(async () => {
    await api.stop();
  });

  it('serves every request as tenant "default", and shows plain BullMQ jobs', async () => {
    const created = await api.request('POST', `/v1/lanes/${LANE}/jobs`, { key: null, body: { name: 'noop' } });
    expect(created.status).toBe(201);
    expect((await api.request('GET', `/v1/lanes/${LANE}/jobs/${created.body.id}`, { key: null })).status).toBe(200);

    const queue = new Queue(LANE, { connection: api.redis, prefix: lanePrefix(api.config.prefix, LANE) });
    try {
      const job = await queue.add('plain', { hello: 'world' });
      const read = await api.request('GET', `/v1/lanes/${LANE}/jobs/${job.id}`, { key: null });
      expect(read.status).toBe(200);
      expect(read.body).toMatchObject({ id: job.id, name: 'plain', state: 'waiting' });
    } finally {
      await queue.close();
    }
  });
});

describe('producer API: start-up', () => {
  it('refuses to start with authentication on and no keys, naming API_KEYS', () => {
    const config = testConfig({ env: { API_KEYS: '' } });
    const redis = createRedis(standaloneUrl(config), 'producer');
    try {
      expect(() => createApiApp({ config, redis, logger: createLogger('api', 'error') })).toThrow(ConfigError);
      expect(() => createApiApp({ config, redis, logger: createLogger('api', 'error') })).toThrow(/API_KEYS/);
    } finally {
      redis.disconnect();
    }
  });

  it('logs a warning at start-up when authentication is off', () => {
    const config = testConfig({ env: { AUTH_DISABLED: 'true' } });
    const redis = createRedis(standaloneUrl(config), 'producer');
    const logger = createLogger('api', 'error');
    const warnings: unknown[] = [];
    logger.warn = ((message: unknown) => {
      warnings.push(message);
      return logger;
    }) as typeof logger.warn;
    try {
      createApiApp({ config, redis, logger });
      expect(warnings).toEqual([expect.stringMatching(/authentication is disabled/)]);
    } finally {
      redis.disconnect();
    }
  });
});
