// Tracing off, as every app runs without an OTLP endpoint: the API and a worker runtime process a
// job end to end (REST submit, one retry, an outbound `http` call) and no span is recorded: the
// global tracer provider stays OpenTelemetry's no-op one, every span the code starts is the
// non-recording no-op span, no trace context is stored with the job or sent downstream, and log
// lines carry no trace ids.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ProxyTracerProvider, SpanKind, isSpanContextValid, trace, type Span, type Tracer } from '@opentelemetry/api';
import { createLogger, jobKeys, startTracing, unwrapJobData, type BullpenConfig } from '@bullpen/core';
import { buildRegistry } from '../apps/worker/src/default-registry';
import { startApiAndWorker, type ApiAndWorker } from './support/api-and-worker';
import { testConfig } from './support/config';
import { startFlakyServer, type FlakyServer } from './support/flaky-server';
import { captureLogs } from './support/logs';
import { waitUntil } from './support/wait';

const KEY = 'untraced-tenant-key-1';

describe('with tracing off', () => {
  let config: BullpenConfig;
  let stack: ApiAndWorker;
  /** Answers 503 once, then 200. */
  let downstream: FlakyServer;
  let downstreamUrl: string;
  let logLines: Array<Record<string, unknown>>;
  /** Every span bullpen's code started, through core's tracer(). */
  const started: Array<{ name: string; kind: SpanKind | undefined; span: Span }> = [];

  beforeAll(async () => {
    config = testConfig({
      // The downstream server listens on loopback, which the http handler calls only when allowed.
      env: { API_KEYS: `acme:${KEY}`, LOG_LEVEL: 'debug', HTTP_HANDLER_ALLOWED_HOSTS: '127.0.0.1' },
      lanesFile: { lanes: { calls: { concurrency: 2, attempts: 2, backoff: { strategy: 'fixed', baseMs: 10, capMs: 100 } } } },
    });
    expect(config.tracing.enabled).toBe(false);
    expect(startTracing(config.tracing, 'bullpen-test', createLogger('test')).enabled).toBe(false);
    const getTracer = trace.getTracer.bind(trace);
    jest.spyOn(trace, 'getTracer').mockImplementation((...args) => {
      const real = getTracer(...args);
      const watched: Tracer = {
        startSpan(name, options, ctx) {
          const span = real.startSpan(name, options, ctx);
          started.push({ name, kind: options?.kind, span });
          return span;
        },
        startActiveSpan: real.startActiveSpan.bind(real),
      };
      return watched;
    });

    downstream = await startFlakyServer(1);
    downstreamUrl = `${downstream.url}/hook`;

    const logger = createLogger('worker', 'debug');
    logLines = captureLogs(logger);
    stack = await startApiAndWorker({ config, apiKey: KEY, registry: buildRegistry(undefined, config.httpHandlerAllowedHosts), workerLogger: logger });
  });

  afterAll(async () => {
    jest.restoreAllMocks();
    await stack?.close();
    await downstream?.close();
  });

  it('records no span, stores no trace context and sends no traceparent while a job runs end to end', async () => {
    const res = await stack.call('POST', '/v1/lanes/calls/jobs', { name: 'http', data: { url: downstreamUrl } });
    expect(res.status).toBe(201);
    const id = res.body.id as string;
    await waitUntil(
      async () => stack.runtime.stats().activeHandlers === 0 && downstream.requests.length === 2 && (await isCompleted(id)),
      { what: 'the job to complete on its second attempt' },
    );

    // No SDK: the global provider delegates to OpenTelemetry's no-op provider.
    const provider = trace.getTracerProvider() as ProxyTracerProvider;
    expect(provider).toBeInstanceOf(ProxyTracerProvider);
    expect(provider.getDelegate().constructor.name).toBe('NoopTracerProvider');

    // The instrumentation ran (server, producer, two attempts, two outbound calls) and every span
    // it started is the non-recording no-op span with no valid context.
    // (the test's own status polls add server spans: GET)
    const made = started.filter((s) => s.kind !== SpanKind.SERVER || s.name !== 'GET').map((s) => `${SpanKind[s.kind ?? 0]} ${s.name}`);
    expect(made.sort()).toEqual(['CLIENT GET', 'CLIENT GET', 'CONSUMER process calls', 'CONSUMER process calls', 'PRODUCER send calls', 'SERVER POST']);
    for (const { name, span } of started) {
      expect({ name, recording: span.isRecording(), valid: isSpanContextValid(span.spanContext()) }).toEqual({
        name,
        recording: false,
        valid: false,
      });
    }

    const raw = await stack.producer.hget(jobKeys(config.prefix, 'calls', id).job, 'data');
    expect(unwrapJobData(JSON.parse(raw as string)).meta).not.toHaveProperty('trace');
    for (const h of downstream.requests) expect(h).not.toHaveProperty('traceparent');
    const jobLines = logLines.filter((l) => l.job_id === id);
    expect(jobLines.length).toBeGreaterThan(0);
    for (const line of jobLines) {
      expect(line).not.toHaveProperty('trace_id');
      expect(line).not.toHaveProperty('span_id');
    }
  });

  async function isCompleted(id: string): Promise<boolean> {
    return (await stack.call('GET', `/v1/lanes/calls/jobs/${id}`)).body.state === 'completed';
  }
});

// The OpenTelemetry SDK costs a process about 0.7 s and 50 MB of RSS to load; with tracing off no
// app loads it. Checked on the built core in a fresh process, where require.cache tells what was
// loaded; with tracing on, the same check sees the SDK (so it would see a stray import too).
describe('the OpenTelemetry SDK', () => {
  const CORE = path.join(__dirname, '..', 'packages', 'core', 'dist', 'index.js');
  function sdkModulesLoaded(env: Record<string, string>): string[] {
    const script = `
      const core = require(${JSON.stringify(CORE)});
      const tracing = core.startTracing(core.loadConfig(process.env).tracing, 'probe', core.createLogger('probe'));
      const loaded = Object.keys(require.cache)
        .map((file) => /node_modules[\\\\/](@opentelemetry[\\\\/][^\\\\/]+)/.exec(file)?.[1])
        .filter((name) => name && name !== '@opentelemetry/api');
      process.stdout.write(JSON.stringify([...new Set(loaded)].sort()));
      tracing.shutdown();`;
    const run = spawnSync(process.execPath, ['-e', script], {
      env: { PATH: process.env.PATH ?? '', LANES_FILE: path.join(__dirname, '..', 'config', 'lanes.json'), ...env },
      encoding: 'utf8',
      timeout: 30_000,
    });
    if (run.status !== 0) throw new Error(`probe failed: ${run.stderr}`);
    return JSON.parse(run.stdout) as string[];
  }

  it('is not loaded by a process with tracing off', () => {
    expect(sdkModulesLoaded({})).toEqual([]);
  });

  it('is loaded once tracing is on', () => {
    expect(sdkModulesLoaded({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' })).toEqual(
      expect.arrayContaining(['@opentelemetry/sdk-node', '@opentelemetry/sdk-trace-base', '@opentelemetry/exporter-trace-otlp-proto']),
    );
  });
});
