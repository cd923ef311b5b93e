// The API's own metrics: requests by route template and status, admission rejections, and the
// rejection event the exporter counts.
import { decodeLaneEvent, laneEventsKey } from '@bullpen/core';
import { startTestApi, type TestApi } from '../apps/api/test/harness';

function sample(text: string, metric: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}{`)) continue;
    const ok = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (ok) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

describe('API metrics', () => {
  let api: TestApi;
  beforeAll(async () => {
    api = await startTestApi({ lanesFile: { lanes: { tiny: { concurrency: 1, maxQueueSize: 1 }, critic: { concurrency: 1 } } } });
  });
  afterAll(() => api.stop());

  it('has every lane\'s admission rejections at 0 before the first one, so an alert\'s increase() sees the first burst', async () => {
    const text = String((await api.request('GET', '/metrics', { key: null })).body);
    for (const lane of ['tiny', 'critic']) {
      for (const reason of ['queue_full', 'api_overloaded', 'redis_full']) {
        expect(sample(text, 'bullpen_api_admission_rejected_total', { lane, reason })).toBe(0);
      }
    }
  });

  it('counts requests by route template and status, never by raw path', async () => {
    expect((await api.request('POST', '/v1/lanes/tiny/jobs', { body: { name: 'noop' } })).status).toBe(201);
    const created = await api.request('POST', '/v1/lanes/tiny/jobs', { body: { name: 'noop' } });
    expect(created.status).toBe(429);
    await api.request('GET', '/v1/lanes/tiny/jobs/does-not-exist');
    await api.request('PUT', '/v1/lanes/tiny/jobs/does-not-exist');
    const text = String((await api.request('GET', '/metrics', { key: null })).body);
    expect(sample(text, 'bullpen_api_requests_total', { route: '/v1/lanes/:lane/jobs', method: 'POST', status: '201' })).toBe(1);
    expect(sample(text, 'bullpen_api_requests_total', { route: '/v1/lanes/:lane/jobs', method: 'POST', status: '429' })).toBe(1);
    expect(sample(text, 'bullpen_api_requests_total', { route: '/v1/lanes/:lane/jobs/:id', method: 'GET', status: '404' })).toBe(1);
    // A method the route does not support is counted under the route's template too.
    expect(sample(text, 'bullpen_api_requests_total', { route: '/v1/lanes/:lane/jobs/:id', method: 'PUT', status: '405' })).toBe(1);
    expect(text).not.toContain('does-not-exist');
    expect(sample(text, 'bullpen_api_request_duration_seconds_count', { route: '/v1/lanes/:lane/jobs', status: '201' })).toBe(1);
    expect(sample(text, 'bullpen_api_admission_rejected_total', { lane: 'tiny', reason: 'queue_full' })).toBe(1);
  });

  it('counts methods other than GET, HEAD, POST, PUT, PATCH, DELETE and OPTIONS as method="other", so that no one can multiply its series', async () => {
    // Node takes some 30 methods; each sent without a key to a few paths once made series of its own.
    const odd = ['PROPFIND', 'MKCOL', 'SUBSCRIBE', 'PURGE', 'LOCK', 'REPORT', 'SEARCH', 'M-SEARCH', 'MKCALENDAR', 'LINK'];
    const paths = ['/v1/lanes/tiny/jobs', '/metrics', '/nowhere'];
    const seriesOf = (text: string) => text.split('\n').filter((line) => line.startsWith('bullpen_api_requests_total{')).length;
    const before = String((await api.request('GET', '/metrics', { key: null })).body);
    for (const method of odd) for (const path of paths) await api.request(method, path, { key: null });
    const text = String((await api.request('GET', '/metrics', { key: null })).body);
    for (const method of odd) expect([method, text.includes(`method="${method}"`)]).toEqual([method, false]);
    let others = 0;
    for (const line of text.split('\n')) {
      if (line.startsWith('bullpen_api_requests_total{') && line.includes('method="other"')) others += Number(line.slice(line.lastIndexOf(' ') + 1));
    }
    expect(others).toBe(odd.length * paths.length);
    // 30 requests of 10 methods made at most one series per route and status.
    expect(seriesOf(text) - seriesOf(before)).toBeLessThanOrEqual(2 * paths.length + 1);
  });

  it('publishes admission rejections to the lane event stream for the exporter', async () => {
    const entries = await api.redis.xrange(laneEventsKey(api.config.prefix, 'tiny'), '-', '+');
    const rejected = entries.map(([, fields]) => decodeLaneEvent(fields)).filter((e) => e.event === 'bp:rejected');
    expect(rejected).toEqual([{ event: 'bp:rejected', count: 1, reason: 'queue_full' }]);
  });
});
