// A request whose client goes away before the API has answered (a timeout on the client's side, a
// cancelled call) is still one request in the API's metrics and one ended server span: counted
// with status 499, as nginx counts them, and its span ended with an error saying the client left.
// A request answered in full is counted once, with its own status, though 'close' follows 'finish'.
import net from 'node:net';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { createLogger, loadConfig, startTracing, type Tracing } from '@bullpen/core';
import IORedis from 'ioredis';
import { KEYS, startTestApi, type TestApi } from '../apps/api/test/harness';
import { startRedis, type RedisProcess } from './support/redis-server';
import { waitUntil } from './support/wait';

function sample(text: string, metric: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${metric}{`)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

describe('API requests the client abandons', () => {
  const exporter = new InMemorySpanExporter();
  let tracing: Tracing;
  let api: TestApi;
  /** A Redis of this test's own, whose writes it pauses. */
  let redis: RedisProcess;
  let control: IORedis;

  const metrics = async () => String((await api.request('GET', '/metrics', { key: null })).body);

  beforeAll(async () => {
    tracing = startTracing(loadConfig({}).tracing, 'bullpen-test', createLogger('test', 'error'), { exporter });
    redis = await startRedis();
    control = new IORedis(redis.url);
    api = await startTestApi({ env: { REDIS_URL: redis.url }, lanesFile: { lanes: { critic: { concurrency: 1 } } } });
  });
  afterAll(async () => {
    await control?.call('CLIENT', 'UNPAUSE').catch(() => undefined);
    await api?.stop();
    control?.disconnect();
    await redis?.stop();
    await tracing?.shutdown();
  });

  const postSpans = () => exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.SERVER && s.attributes['http.request.method'] === 'POST');
  const gauge = async (name: string) => Number(/^(\S+) (\S+)$/m.exec((await metrics()).split('\n').find((l) => l.startsWith(`${name} `)) ?? '')?.[2]);

  it('counts a submission whose client left while Redis was slow under status 499, once, and ends its span with the reason', async () => {
    await control.call('CLIENT', 'PAUSE', '30000', 'WRITE');
    const abort = new AbortController();
    const call = fetch(`${api.url}/v1/lanes/critic/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEYS.acme}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'noop' }),
      signal: abort.signal,
    }).catch((err: unknown) => err);
    await waitUntil(async () => (await gauge('bullpen_api_jobs_in_flight')) === 1, { what: 'the submission to wait on Redis' });
    abort.abort();
    await call;

    const span = await waitUntil(() => postSpans()[0], { what: 'the abandoned request span to end' });
    expect(span.attributes['error.type']).toBe('client_closed');
    expect(span.attributes['http.route']).toBe('/v1/lanes/:lane/jobs');
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'the client closed the connection before the response was sent' });
    let text = await metrics();
    expect(sample(text, 'bullpen_api_requests_total', { route: '/v1/lanes/:lane/jobs', method: 'POST', status: '499' })).toBe(1);
    expect(sample(text, 'bullpen_api_request_duration_seconds_count', { route: '/v1/lanes/:lane/jobs', method: 'POST', status: '499' })).toBe(1);

    // Redis answers at last; the API's late answer goes nowhere and is not counted again.
    await control.call('CLIENT', 'UNPAUSE');
    await waitUntil(async () => (await gauge('bullpen_api_jobs_in_flight')) === 0, { what: 'the submission to finish' });
    text = await metrics();
    expect(sample(text, 'bullpen_api_requests_total', { method: 'POST', status: '499' })).toBe(1);
    expect(sample(text, 'bullpen_api_requests_total', { method: 'POST', status: '201' })).toBeUndefined();
    expect(postSpans()).toHaveLength(1);
    exporter.reset();
  });


  it('counts a request whose client left before sending its whole body under status 499, not under the 400 the API answers a broken body with', async () => {
    const { port } = new URL(api.url);
    const socket = net.connect(Number(port), '127.0.0.1');
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    // The API takes the request (Node answers 100 Continue as it hands it to the app), then gets
    // half its body and waits for the rest; the client gives up first.
    const continued = new Promise<void>((resolve) => socket.once('data', (chunk: Buffer) => chunk.toString().startsWith('HTTP/1.1 100') && resolve()));
    socket.write(
      'POST /v1/lanes/critic/jobs HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n' +
        `Authorization: Bearer ${KEYS.acme}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n`,
    );
    await continued;
    await new Promise<void>((resolve) => socket.write('{"name":', () => resolve()));
    socket.destroy();

    const span = await waitUntil(() => postSpans()[0], { what: 'the abandoned request span to end' });
    expect(span.attributes['error.type']).toBe('client_closed');
    expect(span.status).toEqual({ code: SpanStatusCode.ERROR, message: 'the client closed the connection before the response was sent' });

    const text = await waitUntil(async () => {
      const t = await metrics();
      return sample(t, 'bullpen_api_requests_total', { method: 'POST', status: '499' }) === 2 ? t : undefined;
    }, { what: 'the abandoned request to be counted' });
    expect(sample(text, 'bullpen_api_requests_total', { method: 'POST', status: '499' })).toBe(2);
    // Counted under 499 only: not also under the 400 the API tried to answer with.
    expect(sample(text, 'bullpen_api_requests_total', { method: 'POST', status: '400' })).toBeUndefined();
    expect(postSpans()).toHaveLength(1);
  });

  it('counts a request answered in full once, under its own status', async () => {
    expect((await api.request('GET', '/v1/lanes/critic/jobs/no-such-job')).status).toBe(404);
    const text = await metrics();
    expect(sample(text, 'bullpen_api_requests_total', { route: '/v1/lanes/:lane/jobs/:id', method: 'GET', status: '404' })).toBe(1);
    expect(sample(text, 'bullpen_api_requests_total', { route: '/v1/lanes/:lane/jobs/:id', method: 'GET', status: '499' })).toBeUndefined();
  });
});
