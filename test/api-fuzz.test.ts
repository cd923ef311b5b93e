// Property-based and random requests against a running API: whatever arrives, never a 5xx,
// never a job from a rejected request, never a job in a lane the key may not use.
import fc from 'fast-check';
import { laneStateKeys } from '@bullpen/core';
import { startTestApi, KEYS, type TestApi } from '../apps/api/test/harness';

const LANES = ['tool_call', 'critic'];

const laneSegment = fc.oneof(
  fc.constantFrom(...LANES),
  fc.constantFrom('nope', '..', '%2e%2e', 'tool_call%2F..', 'tool_call%00', '%E2%80%AE', 'TOOL_CALL', 'critic;', '%', '%zz', 'a'.repeat(300), '__proto__', 'constructor'),
  fc.string({ maxLength: 20 }).map(encodeURIComponent),
);
const idSegment = fc.oneof(fc.uuid(), fc.constantFrom('meta', 'wait', 'a:b', '..', '%2F', '1', '-1', '__proto__'), fc.string({ maxLength: 10 }).map(encodeURIComponent));
const route = fc.oneof(
  laneSegment.map((l) => `/v1/lanes/${l}/jobs`),
  laneSegment.map((l) => `/v1/lanes/${l}/jobs/bulk`),
  fc.tuple(laneSegment, idSegment).map(([l, id]) => `/v1/lanes/${l}/jobs/${id}`),
  laneSegment.map((l) => `/v1/lanes/${l}/dead`),
  laneSegment.map((l) => `/v1/lanes/${l}/dead/redrive`),
  laneSegment.map((l) => `/v1/lanes/${l}/pause`),
  fc.constantFrom('/v1/lanes', '/v1', '/v1/../healthz', '/openapi.json', '/readyz', '/v2/lanes'),
);

const edgeNumber = fc.oneof(
  fc.constantFrom(-1, 0, 1, 2 ** 53 + 1, Number.MAX_SAFE_INTEGER, 1e308, -1e308, 0.5, 2097153),
  fc.constantFrom('NaN', 'Infinity', '1e309', '', '10', '0x10'),
  fc.integer(),
  fc.double(),
);
const nastyKeys = fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty');
const job = fc.record(
  {
    name: fc.oneof(fc.constantFrom('noop', 'sleep', 'x'.repeat(200), '', '9bad', 'ok.name'), fc.string({ maxLength: 30 }), edgeNumber),
    data: fc.oneof(fc.jsonValue({ maxDepth: 4 }), fc.dictionary(nastyKeys, fc.jsonValue({ maxDepth: 2 }))),
    idempotencyKey: fc.oneof(fc.string({ maxLength: 250 }), edgeNumber),
    priority: edgeNumber,
    delayMs: edgeNumber,
    attempts: edgeNumber,
    deadlineMs: edgeNumber,
    timeoutMs: edgeNumber,
    extra: fc.jsonValue({ maxDepth: 1 }),
  },
  { requiredKeys: [] },
);
const deep = fc.integer({ min: 50, max: 5000 }).map((n) => '['.repeat(n) + ']'.repeat(n));
const body = fc.oneof(
  job.map((j) => JSON.stringify(j)),
  fc.array(job, { maxLength: 5 }).map((jobs) => JSON.stringify({ jobs })),
  fc.jsonValue({ maxDepth: 5 }).map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 200 }),
  deep,
  fc.constantFrom('{"name":"noop","__proto__":{"polluted":true}}', '{"constructor":{"prototype":{"polluted":true}}}', '{"name":"noop","data":1e309}', 'null', '[]', '"x"', '{', '\u0000', '\uFEFF{"name":"noop"}'),
  fc.constant('x'.repeat(2 * 1024 * 1024)),
);
const contentType = fc.constantFrom(
  'application/json',
  'application/json; charset=utf-8',
  'application/json; charset=utf-16',
  'text/plain',
  'application/x-www-form-urlencoded',
  'application/problem+json',
  'multipart/form-data; boundary=x',
  undefined,
);
const key = fc.constantFrom<string | null>(KEYS.acme, KEYS.beta, KEYS.acmeCriticOnly, 'wrong-key-xxxxxxxx', '', null);
const request = fc.record({
  method: fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'PATCH'),
  route,
  contentType,
  key,
  body: fc.option(body, { nil: undefined }),
  authScheme: fc.constantFrom('Bearer', 'bearer', 'Basic', 'Bearer  '),
});

describe('the API under fuzzed requests', () => {
  let api: TestApi;
  let created = { tool_call: 0, critic: 0 } as Record<string, number>;

  beforeAll(async () => {
    api = await startTestApi({ lanesFile: { lanes: { tool_call: { concurrency: 1, maxQueueSize: 100000 }, critic: { concurrency: 1, maxQueueSize: 100000 } } } });
  });
  afterAll(() => api.stop());

  it('never answers 5xx, never crashes, and creates jobs only for accepted requests in allowed lanes', async () => {
    created = { tool_call: 0, critic: 0 };
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const headers: Record<string, string> = {};
        if (r.contentType) headers['content-type'] = r.contentType;
        if (r.key !== null) headers.authorization = `${r.authScheme} ${r.key}`;
        const res = await fetch(`${api.url}${r.route}`, {
          method: r.method,
          headers,
          ...(r.body !== undefined && r.method !== 'GET' ? { body: r.body } : {}),
        });
        const text = await res.text();
        expect(res.status).toBeLessThan(500);
        if (res.status >= 400) expect(res.headers.get('content-type') ?? '').toMatch(/json|text\/plain/);
        // Account for what was created, and check it was allowed.
        const lane = /^\/v1\/lanes\/(tool_call|critic)\/jobs(\/bulk)?$/.exec(r.route);
        if (r.method === 'POST' && lane && (res.status === 201 || res.status === 200)) {
          const target = lane[1] as string;
          const mayUse = r.key === KEYS.acme || r.key === KEYS.beta || (r.key === KEYS.acmeCriticOnly && target === 'critic');
          expect({ route: r.route, key: r.key, mayUse }).toEqual({ route: r.route, key: r.key, mayUse: true });
          const parsed = JSON.parse(text) as { created?: number };
          if (lane[2]) created[target] = (created[target] ?? 0) + (parsed.created ?? 0);
          else if (res.status === 201) created[target] = (created[target] ?? 0) + 1;
        }
      }),
      { numRuns: 400 },
    );
    // Nothing polluted the process's prototypes.
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // Every job in Redis came from a request that was answered as created.
    for (const lane of LANES) {
      const keys = laneStateKeys(api.config.prefix, lane);
      const [wait, delayed, prioritized] = await Promise.all([
        api.redis.llen(keys.wait),
        api.redis.zcard(keys.delayed),
        api.redis.zcard(keys.prioritized),
      ]);
      expect({ lane, jobs: wait + delayed + prioritized }).toEqual({ lane, jobs: created[lane] });
    }
  });
});
