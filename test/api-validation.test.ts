// Bad input: every kind gets its 4xx and stable code, as application/problem+json, and leaves
// Redis untouched: nothing enqueued, not even a reservation.
import { redisMarkerKey } from '@bullpen/core';
import { startTestApi, type RequestOptions, type TestApi } from '../apps/api/test/harness';

const lanesFile = {
  lanes: {
    tool_call: { concurrency: 1 },
    restricted: { concurrency: 1, jobNames: ['noop', 'sleep'] },
    critic: { concurrency: 1 },
    deadlined: { concurrency: 1, deadlineMs: 60_000 },
  },
};

interface Case {
  what: string;
  method?: string;
  path: string;
  request: RequestOptions;
  status: number;
  code: string;
  errors?: { field: string; message: string | RegExp }[];
  detail?: RegExp;
}

const jobs = '/v1/lanes/tool_call/jobs';

const cases: Case[] = [
  { what: 'an unknown lane', path: '/v1/lanes/nope/jobs', request: { body: { name: 'noop' } }, status: 404, code: 'lane_not_found' },
  { what: 'a lane name that is an object property', path: '/v1/lanes/constructor/jobs', request: { body: { name: 'noop' } }, status: 404, code: 'lane_not_found' },
  { what: 'an unknown route', path: '/v1/nothing-here', request: {}, status: 404, code: 'route_not_found' },
  { what: 'an unknown route outside /v1', method: 'GET', path: '/v2/lanes', request: { key: null }, status: 404, code: 'route_not_found' },
  { what: 'a path that does not decode', path: '/v1/lanes/%E0%A4%A/jobs', request: { body: { name: 'noop' } }, status: 400, code: 'bad_request' },
  { what: 'malformed JSON', path: jobs, request: { raw: '{"name": "noop",' }, status: 400, code: 'malformed_json' },
  { what: 'a wrong content type', path: jobs, request: { raw: 'name=noop', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, status: 415, code: 'unsupported_media_type' },
  {
    // Well-formed UTF-16 JSON, which body-parser would decode: JSON between systems is UTF-8.
    what: 'a charset other than UTF-8',
    path: jobs,
    request: { raw: Buffer.from('{"name":"noop"}', 'utf16le'), headers: { 'content-type': 'application/json; charset=utf-16le' } },
    status: 415,
    code: 'unsupported_media_type',
    detail: /charset utf-16le; send UTF-8 JSON/,
  },
  {
    what: 'a body that does not decompress as its Content-Encoding says',
    path: jobs,
    request: { raw: '{"name":"noop"}', headers: { 'content-encoding': 'gzip' } },
    status: 400,
    code: 'bad_request',
    detail: /does not decompress as its Content-Encoding says \(Z_DATA_ERROR\)/,
  },
  { what: 'a missing body', path: jobs, request: {}, status: 400, code: 'validation_failed', errors: [{ field: 'body', message: 'required' }] },
  { what: 'a body that is not an object', path: jobs, request: { body: ['noop'] }, status: 400, code: 'validation_failed', errors: [{ field: 'body', message: 'expected a JSON object' }] },
  {
    what: 'schema violations, one message per field',
    path: jobs,
    request: { body: { name: '', priority: 0, delayMs: 'later', attempts: 101, surprise: true } },
    status: 400,
    code: 'validation_failed',
    errors: [
      { field: 'body.name', message: /job name/ },
      { field: 'body.priority', message: 'expected an integer from 1 to 2097151' },
      { field: 'body.delayMs', message: 'expected an integer from 0 to 31536000000' },
      { field: 'body.attempts', message: 'expected an integer from 1 to 100' },
      { field: 'body.surprise', message: 'unknown field' },
    ],
  },
  {
    // Past BullMQ's own bound, BullMQ would refuse the job after admission; past Node's longest
    // timer, the attempt would time out after 1 ms.
    what: 'a priority BullMQ refuses, a timeout no timer can keep and a deadline past exact integers',
    path: jobs,
    request: { body: { name: 'noop', priority: 2 ** 21, timeoutMs: 2 ** 31, deadlineMs: 1e20 } },
    status: 400,
    code: 'validation_failed',
    errors: [
      { field: 'body.priority', message: 'expected an integer from 1 to 2097151' },
      { field: 'body.deadlineMs', message: 'expected an integer from 1 to 9007199254740991' },
      { field: 'body.timeoutMs', message: 'expected an integer from 1 to 2147483647' },
    ],
  },
  {
    // Both would hash to the key of U+FFFD, so that different keys would name the same job.
    what: 'an idempotency key with a lone surrogate',
    path: jobs,
    request: { raw: '{"name":"noop","idempotencyKey":"order-\\ud800"}' },
    status: 400,
    code: 'validation_failed',
    errors: [{ field: 'body.idempotencyKey', message: /well-formed Unicode/ }],
  },
  {
    what: 'a body that is not UTF-8',
    path: jobs,
    request: { raw: Buffer.concat([Buffer.from('{"name":"noop","idempotencyKey":"inv-'), Buffer.from([0xff]), Buffer.from('"}')]) },
    status: 400,
    code: 'malformed_json',
  },
  {
    what: 'a prototype-pollution key',
    path: jobs,
    request: { raw: '{"name":"noop","__proto__":{"isAdmin":true}}' },
    status: 400,
    code: 'validation_failed',
    errors: [{ field: 'body.__proto__', message: 'unknown field' }],
  },
  {
    what: 'a deadline shorter than the delay',
    path: jobs,
    request: { body: { name: 'noop', delayMs: 5000, deadlineMs: 1000 } },
    status: 400,
    code: 'validation_failed',
    errors: [{ field: 'body.deadlineMs', message: /delayMs/ }],
  },
  {
    // Accepted, the job would wait out its delay and then fail with deadline_exceeded, unrun.
    what: "a delay past the lane's deadline",
    path: '/v1/lanes/deadlined/jobs',
    request: { body: { name: 'noop', delayMs: 61_000 } },
    status: 400,
    code: 'validation_failed',
    errors: [{ field: 'body.delayMs', message: /lane's deadlineMs \(60000\)/ }],
  },
  {
    what: 'a job name the lane does not allow',
    path: '/v1/lanes/restricted/jobs',
    request: { body: { name: 'cpu' } },
    status: 400,
    code: 'job_name_not_allowed',
    errors: [{ field: 'body.name', message: 'expected one of noop, sleep' }],
  },
  {
    what: 'data nested one level past the bound',
    path: jobs,
    request: { raw: `{"name":"noop","data":${'['.repeat(65)}${']'.repeat(65)}}` },
    status: 400,
    code: 'validation_failed',
    errors: [{ field: 'body.data', message: 'expected arrays and objects nested at most 64 levels deep' }],
  },
  { what: 'a body over the limit', path: jobs, request: { body: { name: 'noop', data: 'x'.repeat(4096) } }, status: 413, code: 'payload_too_large' },
  { what: 'a bulk body over the limit', path: `${jobs}/bulk`, request: { body: { jobs: [{ name: 'noop', data: 'x'.repeat(4096) }] } }, status: 413, code: 'payload_too_large' },
  { what: 'an empty batch', path: `${jobs}/bulk`, request: { body: { jobs: [] } }, status: 400, code: 'validation_failed', errors: [{ field: 'body.jobs', message: /1 to 1000/ }] },
  { what: 'a batch that is not an array', path: `${jobs}/bulk`, request: { body: { jobs: { name: 'noop' } } }, status: 400, code: 'validation_failed' },
  { what: 'malformed JSON in a batch', path: `${jobs}/bulk`, request: { raw: '{"jobs": [' }, status: 400, code: 'malformed_json' },
];

describe('producer API: bad input', () => {
  let api: TestApi;

  beforeAll(async () => {
    api = await startTestApi({ lanesFile, env: { API_BODY_LIMIT_BYTES: '2048' } });
  });

  afterAll(async () => {
    await api.stop();
  });

  it.each(cases)('answers $what with $status $code', async ({ method = 'POST', path, request, status, code, errors, detail }) => {
    const reply = await api.request(method, path, request);
    expect(reply.status).toBe(status);
    expect(reply.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(reply.body).toMatchObject({ type: `urn:bullpen:problem:${code}`, status, code, title: expect.any(String), detail: expect.any(String) });
    if (detail) expect(reply.body.detail).toMatch(detail);
    if (errors) {
      expect(reply.body.errors).toHaveLength(errors.length);
      errors.forEach((expected, i) => {
        expect(reply.body.errors[i].field).toBe(expected.field);
        if (typeof expected.message === 'string') expect(reply.body.errors[i].message).toBe(expected.message);
        else expect(reply.body.errors[i].message).toMatch(expected.message);
      });
    }
  });

  it('rejects a batch of more than 1000 jobs as a whole', async () => {
    const big = await startTestApi({ lanesFile, env: { API_BODY_LIMIT_BYTES: String(1024 * 1024) } });
    try {
      const reply = await big.request('POST', `${jobs}/bulk`, { body: { jobs: Array.from({ length: 1001 }, () => ({ name: 'noop' })) } });
      expect(reply.status).toBe(400);
      expect(reply.body.errors).toEqual([{ field: 'body.jobs', message: 'expected an array of 1 to 1000 jobs' }]);
      expect(await big.backlog('tool_call')).toBe(0);
    } finally {
      await big.stop();
    }
  });

  it('refuses data nested thousands of levels deep with 400 naming the field, alone in a batch, instead of failing with 500', async () => {
    // Well under the body limit, but deep enough to overflow JSON.stringify's stack in BullMQ.
    const deep = `${'['.repeat(5000)}${']'.repeat(5000)}`;
    const big = await startTestApi({ lanesFile, env: { API_BODY_LIMIT_BYTES: String(1024 * 1024) } });
    try {
      const single = await big.request('POST', jobs, { raw: `{"name":"noop","data":${deep}}` });
      expect(single.status).toBe(400);
      expect(single.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(single.body).toMatchObject({ code: 'validation_failed', errors: [{ field: 'body.data', message: /64 levels/ }] });

      const bulk = await big.request('POST', `${jobs}/bulk`, { raw: `{"jobs":[{"name":"noop"},{"name":"noop","data":${deep}}]}` });
      expect(bulk.status).toBe(200);
      expect(bulk.body).toMatchObject({ created: 1, invalid: 1 });
      expect(bulk.body.results[1]).toEqual({
        index: 1,
        status: 'invalid',
        code: 'validation_failed',
        errors: [{ field: 'body.jobs[1].data', message: 'expected arrays and objects nested at most 64 levels deep' }],
      });
      expect(await big.backlog('tool_call')).toBe(1);
    } finally {
      await big.stop();
    }
  });

  it('answers a method a path does not support with 405 and Allow after authentication, and OPTIONS with 204 and Allow', async () => {
    // method, path, whether the request carries an API key, status, Allow
    const cases: [string, string, boolean, number, string][] = [
      ['PUT', jobs, true, 405, 'POST, OPTIONS'],
      ['GET', '/v1/lanes/tool_call/pause', true, 405, 'POST, OPTIONS'],
      ['PATCH', '/v1/lanes/tool_call/jobs/some-id', true, 405, 'GET, HEAD, DELETE, OPTIONS'],
      // Job ids are UUIDs: "bulk" names the bulk route, never a job.
      ['GET', `${jobs}/bulk`, true, 405, 'POST, OPTIONS'],
      ['POST', '/v1/lanes/tool_call/dead', true, 405, 'GET, HEAD, DELETE, OPTIONS'],
      ['DELETE', '/healthz', false, 405, 'GET, HEAD, OPTIONS'],
      ['POST', '/openapi.json', false, 405, 'GET, HEAD, OPTIONS'],
      ['OPTIONS', '/v1/lanes/tool_call/dead', true, 204, 'GET, HEAD, DELETE, OPTIONS'],
      ['OPTIONS', '/readyz', false, 204, 'GET, HEAD, OPTIONS'],
    ];
    for (const [method, path, withKey, status, allow] of cases) {
      const reply = await api.request(method, path, withKey ? {} : { key: null });
      const label = `${method} ${path}`;
      expect([label, reply.status, reply.headers.get('allow')]).toEqual([label, status, allow]);
      if (status === 405) {
        expect([label, reply.headers.get('content-type')]).toEqual([label, expect.stringMatching(/^application\/problem\+json/)]);
        expect(reply.body).toMatchObject({ type: 'urn:bullpen:problem:method_not_allowed', status: 405, code: 'method_not_allowed', title: 'Method not allowed' });
        expect(reply.body.detail).toContain(allow);
      } else {
        expect([label, reply.body]).toEqual([label, '']);
      }
    }
    // Who may not use the API learns nothing of its routes.
    const anonymous = await api.request('PUT', jobs, { key: null });
    expect([anonymous.status, anonymous.body.code, anonymous.headers.get('allow')]).toEqual([401, 'unauthorized', null]);
    // A path that exists for no method is still not found.
    expect((await api.request('PUT', '/v1/lanes/tool_call/nothing')).body.code).toBe('route_not_found');
  });

  it('did not pollute any prototype', () => {
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined();
  });

  it('wrote nothing to Redis for any of the rejected requests', async () => {
    // Only the marker the API writes as it connects (redis-data-loss.ts).
    const keys = await api.redis.keys(`${api.config.prefix}:*`);
    expect(keys).toEqual([redisMarkerKey(api.config.prefix)]);
  });
});
