// The built API, run as users run it, with tracing sent to a stand-in collector and configured by
// OpenTelemetry's standard variables: OTEL_RESOURCE_ATTRIBUTES reaches the spans' resource,
// OTEL_TRACES_SAMPLER decides what is sampled, a sampler bullpen cannot run stops it at startup,
// and a collector that refuses spans is reported in the API's log once, not once per batch, and
// again when it takes them.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { startOtlpCollector, type OtlpCollector } from './support/otlp-collector';
import { cleanupPrefix } from './support/config';
import { redisUrl, testPrefix, waitUntil } from './support/wait';

const ROOT = path.resolve(__dirname, '..');
const PREFIX = testPrefix('otelenv');
const TRACEPARENT = (sampled: boolean, n: number) => `00-${'ab'.repeat(15)}${String(n).padStart(2, '0')}-b7ad6b7169203331-0${sampled ? 1 : 0}`;

interface RunningApi {
  url: string;
  child: ChildProcess;
  lines: Array<Record<string, unknown>>;
  stop(): Promise<void>;
}

async function startApi(collector: OtlpCollector, env: Record<string, string>): Promise<RunningApi> {
  const child = spawn(process.execPath, [path.join(ROOT, 'apps/api/dist/main.js')], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      REDIS_URL: redisUrl(),
      BULLPEN_PREFIX: PREFIX,
      HOST: '127.0.0.1',
      PORT: '0',
      API_KEYS: 'acme:otel-env-key-1',
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
      // Batches go out every 50 ms, so that a test sees many of them in a second.
      OTEL_BSP_SCHEDULE_DELAY: '50',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: RunningApi['lines'] = [];
  let buffered = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    for (const part of parts) if (part.trim()) lines.push(JSON.parse(part) as Record<string, unknown>);
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const listening = await waitUntil(() => lines.find((l) => l.msg === 'api listening'), { what: `the API to listen (stderr: ${stderr})` });
  return {
    url: String(listening.url),
    child,
    lines,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

describe('tracing configured by the standard OTEL_* variables, in the API process', () => {
  let collector: OtlpCollector;
  let api: RunningApi | undefined;

  beforeEach(async () => {
    collector = await startOtlpCollector();
  });
  afterEach(async () => {
    await api?.stop();
    api = undefined;
    await collector.close();
  });
  afterAll(() => cleanupPrefix(PREFIX));

  const get = (path: string, headers: Record<string, string> = {}) => fetch(`${api!.url}${path}`, { headers }).then((r) => r.status);

  it('puts OTEL_RESOURCE_ATTRIBUTES on every span, percent-decoded, with OTEL_SERVICE_NAME winning over a service.name in it', async () => {
    api = await startApi(collector, {
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=prod, service.namespace=payments,team=a%2Cb%3Dc,service.name=from-attributes',
      OTEL_SERVICE_NAME: 'bullpen-api-eu',
    });
    expect(await get('/healthz')).toBe(200);
    const [span] = await waitUntil(() => (collector.spans().length > 0 ? collector.spans() : undefined), { what: 'a span at the collector' });
    expect(span?.resource).toMatchObject({
      'service.name': 'bullpen-api-eu',
      'deployment.environment': 'prod',
      'service.namespace': 'payments',
      team: 'a,b=c',
    });
  });

  it('takes the service name from OTEL_RESOURCE_ATTRIBUTES when OTEL_SERVICE_NAME is unset', async () => {
    api = await startApi(collector, { OTEL_RESOURCE_ATTRIBUTES: 'service.name=payments-api' });
    expect(await get('/healthz')).toBe(200);
    const spans = await waitUntil(() => (collector.spans().length > 0 ? collector.spans() : undefined), { what: 'a span at the collector' });
    expect(spans[0]?.service).toBe('payments-api');
  });

  it('samples as OTEL_TRACES_SAMPLER says: parentbased_always_off keeps only what a sampled caller asked for', async () => {
    api = await startApi(collector, { OTEL_TRACES_SAMPLER: 'parentbased_always_off' });
    expect(await get('/healthz?n=1')).toBe(200);
    expect(await get('/healthz?n=2', { traceparent: TRACEPARENT(false, 2) })).toBe(200);
    expect(await get('/healthz?n=3', { traceparent: TRACEPARENT(true, 3) })).toBe(200);
    // The API's default sampler (parentbased_always_on) would export the first request's span too.
    await waitUntil(() => collector.spans().some((s) => s.traceId === `${'ab'.repeat(15)}03`), { what: 'the sampled request span' });
    expect(await get('/healthz?n=4', { traceparent: TRACEPARENT(true, 4) })).toBe(200);
    await waitUntil(() => collector.spans().some((s) => s.traceId === `${'ab'.repeat(15)}04`), { what: 'the second sampled request span' });
    expect(collector.spans().map((s) => s.traceId)).toEqual([`${'ab'.repeat(15)}03`, `${'ab'.repeat(15)}04`]);
  });

  it.each([
    [{ OTEL_TRACES_SAMPLER: 'jaeger_remote' }, 'OTEL_TRACES_SAMPLER: expected one of always_on'],
    [{ OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=prod,broken' }, 'OTEL_RESOURCE_ATTRIBUTES: expected comma-separated key=value pairs'],
    [{ OTEL_LOG_LEVEL: 'loud' }, 'OTEL_LOG_LEVEL: expected none, error, warn, info, debug, verbose, all, got "loud"'],
  ])('stops at startup with one line naming the variable for %j', async (env, message) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'apps/api/dist/main.js')], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', REDIS_URL: redisUrl(), BULLPEN_PREFIX: PREFIX, PORT: '0', API_KEYS: 'acme:otel-env-key-1', OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, ...env },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    // An app that does not refuse the value starts and serves: stopped, it exits 0, not 1.
    const started = setTimeout(() => child.kill('SIGTERM'), 10_000);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    clearTimeout(started);
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toEqual([expect.stringContaining(`bullpen api: ${message}`)]);
  });

  it('logs a collector that refuses spans once while batch after batch fails, and says when export works again', async () => {
    collector.refuse = 400;
    api = await startApi(collector, {});
    const exportLines = () => api!.lines.filter((l) => /trace export|opentelemetry/.test(String(l.msg)));
    // Requests spread over time, so that their spans go out in many batches, each refused.
    await waitUntil(
      async () => {
        await get('/healthz');
        return collector.refused >= 5;
      },
      { what: 'five refused exports' },
    );
    await waitUntil(() => exportLines().length > 0, { what: 'the failure to be logged' });
    expect(exportLines()).toEqual([
      expect.objectContaining({ level: 'warn', msg: 'trace export failing: spans are dropped until the collector takes them', status: 400, response: 'refused by the test' }),
    ]);

    collector.refuse = undefined;
    await waitUntil(
      async () => {
        await get('/healthz');
        return exportLines().length > 1;
      },
      { what: 'the recovery to be logged' },
    );
    expect(exportLines()).toEqual([
      expect.objectContaining({ msg: 'trace export failing: spans are dropped until the collector takes them' }),
      expect.objectContaining({ level: 'info', msg: 'trace export works again', failed_batches: expect.any(Number) }),
    ]);
    expect(exportLines()[1]?.failed_batches).toBeGreaterThanOrEqual(5);
    // Lines about the exporter belong to no request's trace.
    for (const line of exportLines()) expect(line).not.toHaveProperty('trace_id');
    expect(collector.spans().length).toBeGreaterThan(0);
  });
});
