// Tracing off, as every app runs without an OTLP endpoint: the API and a worker runtime process a
// job end to end (REST submit, one retry, an outbound `http` call) and no span is recorded: the
// global tracer provider stays OpenTelemetry's no-op one, every span the code starts is the
// non-recording no-op span, no trace context is stored with the job or sent downstream, and log
// lines carry no trace ids.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { ProxyTracerProvider, SpanKind, isSpanContextValid, trace, type Span, type Tracer } from '@opentelemetry/api';
import winston from 'winston';
import type IORedis from 'ioredis';
import { createLogger, createRedis, jobKeys, startTracing, unwrapJobData, type BullpenConfig } from '@bullpen/core';
import { createApiApp, type ApiApp } from '../apps/api/src/app';
import { listen, type RunningServer } from '../apps/api/src/server';
import { buildRegistry } from '../apps/worker/src/default-registry';
import { WorkerRuntime } from '../apps/worker/src/runtime';
import { cleanupPrefix, standaloneUrl, testConfig } from './support/config';
import { waitUntil } from './support/wait';

const KEY = 'untraced-tenant-key-1';

describe('with tracing off', () => {
  let config: BullpenConfig;
  let producer: IORedis;
  let api: ApiApp;
  let server: RunningServer;
  let runtime: WorkerRuntime;
  let downstream: http.Server;
  let downstreamUrl: string;
  const headers: http.IncomingHttpHeaders[] = [];
  const logLines: Array<Record<string, unknown>> = [];
  /** Every span bullpen's code started, through core's tracer(). */
  const started: Array<{ name: string; kind: SpanKind | undefined; span: Span }> = [];

  beforeAll(async () => {
    config = testConfig({
      env: { API_KEYS: `acme:${KEY}`, LOG_LEVEL: 'debug' },
      lanesFile: { lanes: { calls: { concurrency: 2, attempts: 2, backoff: { strategy: 'fixed', baseMs: 10, capMs: 100 } } } },
    });
    expect(config.tracing.enabled).toBe(false);
    expect(startTracing(config.tracing, 'bullpen-test').enabled).toBe(false);
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

    downstream = http.createServer((req, res) => {
      headers.push(req.headers);
      if (headers.length === 1) res.writeHead(503).end('busy');
      else res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
    await new Promise<void>((resolve) => downstream.listen(0, '127.0.0.1', resolve));
    downstreamUrl = `http://127.0.0.1:${(downstream.address() as AddressInfo).port}/hook`;

    producer = createRedis(standaloneUrl(config), 'producer');
    await waitUntil(() => producer.status === 'ready', { what: 'the producer connection' });
    api = createApiApp({ config, redis: producer, logger: createLogger('api', 'error') });
    server = await listen(api.app, '127.0.0.1', 0);
    const logger = createLogger('worker', 'debug');
    logger.clear();
    logger.add(
      new winston.transports.Stream({
        stream: new Writable({
          write(chunk, _encoding, done) {
            logLines.push(JSON.parse(String(chunk)) as Record<string, unknown>);
            done();
          },
        }),
      }),
    );
    runtime = new WorkerRuntime({ config, logger, registry: buildRegistry(undefined) });
    await runtime.start();
  });

  afterAll(async () => {
    jest.restoreAllMocks();
    await runtime?.close(5000);
    await server?.close(1000);
    await api?.close();
    producer?.disconnect();
    await new Promise((resolve) => downstream?.close(resolve));
    await cleanupPrefix(config.prefix);
  });

  it('records no span, stores no trace context and sends no traceparent while a job runs end to end', async () => {
    const res = await fetch(`${server.url}/v1/lanes/calls/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'http', data: { url: downstreamUrl } }),
    });
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };
    await waitUntil(async () => runtime.stats().activeHandlers === 0 && headers.length === 2 && (await isCompleted(id)), {
      what: 'the job to complete on its second attempt',
    });

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

    const raw = await producer.hget(jobKeys(config.prefix, 'calls', id).job, 'data');
    expect(unwrapJobData(JSON.parse(raw as string)).meta).not.toHaveProperty('trace');
    for (const h of headers) expect(h).not.toHaveProperty('traceparent');
    const jobLines = logLines.filter((l) => l.job_id === id);
    expect(jobLines.length).toBeGreaterThan(0);
    for (const line of jobLines) {
      expect(line).not.toHaveProperty('trace_id');
      expect(line).not.toHaveProperty('span_id');
    }
  });

  async function isCompleted(id: string): Promise<boolean> {
    const res = await fetch(`${server.url}/v1/lanes/calls/jobs/${id}`, { headers: { authorization: `Bearer ${KEY}` } });
    return ((await res.json()) as { state?: string }).state === 'completed';
  }
});
