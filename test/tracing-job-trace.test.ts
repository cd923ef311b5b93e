// One trace from REST request to handler: the API and a worker runtime run in this process on one
// test prefix, with the OpenTelemetry SDK exporting into memory. A job whose `http` handler calls
// a local server that answers 503 twice and then 200 must leave one trace: the API's server span,
// the producer span, three consumer spans (one per attempt) and three client spans, and the local
// server must have received that trace in each request's traceparent.
import { SpanKind, type HrTime } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { createLogger, jobKeys, startTracing, unwrapJobData, type BullpenConfig, type Tracing } from '@bullpen/core';
import { buildRegistry } from '../apps/worker/src/default-registry';
import { defineHandler } from '../apps/worker/src/handler';
import { startApiAndWorker, type ApiAndWorker } from './support/api-and-worker';
import { testConfig } from './support/config';
import { startFlakyServer, type FlakyServer } from './support/flaky-server';
import { captureLogs } from './support/logs';
import { waitUntil } from './support/wait';

const KEY = 'trace-tenant-key-1';
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-01$/;
const BACKOFF_MS = 20;

/** A handler that ignores its abort signal: the attempt times out, then escalates. */
const stubborn = defineHandler({
  name: 'stubborn',
  run: () => new Promise((resolve) => setTimeout(() => resolve('late'), 400)),
});

describe('one trace from the REST request to the handler', () => {
  const exporter = new InMemorySpanExporter();
  let tracing: Tracing;
  let config: BullpenConfig;
  let stack: ApiAndWorker;
  /** Answers 503 twice, then 200. */
  let downstream: FlakyServer;
  let downstreamUrl: string;
  let logLines: Array<Record<string, unknown>>;

  beforeAll(async () => {
    tracing = startTracing(testConfig().tracing, 'bullpen-test', createLogger('test', 'error'), { exporter });
    config = testConfig({
      // The downstream server listens on loopback, which the http handler calls only when allowed.
      env: { API_KEYS: `acme:${KEY}`, LOG_LEVEL: 'debug', LOG_JOB_PAYLOADS: 'true', HTTP_HANDLER_ALLOWED_HOSTS: '127.0.0.1' },
      lanesFile: {
        lanes: {
          calls: { concurrency: 2, attempts: 3, backoff: { strategy: 'fixed', baseMs: BACKOFF_MS, capMs: 1000 } },
          slow: { concurrency: 1, attempts: 1, timeoutMs: 100, timeoutEscalationFactor: 1.5 },
        },
      },
    });
    downstream = await startFlakyServer(2);
    downstreamUrl = `${downstream.url}/hook?x=1`;

    const logger = createLogger('worker', 'debug');
    logLines = captureLogs(logger);
    const registry = buildRegistry(undefined, config.httpHandlerAllowedHosts).register(stubborn, 'the test');
    stack = await startApiAndWorker({ config, apiKey: KEY, registry, workerLogger: logger });
  });

  afterAll(async () => {
    await stack?.close();
    await downstream?.close();
    await tracing?.shutdown();
  });

  const finished = (lane: string, id: string) =>
    waitUntil(
      async () => {
        const res = await stack.call('GET', `/v1/lanes/${lane}/jobs/${id}`);
        return ['completed', 'failed'].includes(res.body.state as string) ? res.body : undefined;
      },
      { what: `job ${id} to finish` },
    );

  const spans = () => exporter.getFinishedSpans();
  const attr = (span: ReadableSpan | undefined, name: string) => span?.attributes[name];
  const eventNames = (span: ReadableSpan | undefined) => span?.events.map((e) => e.name);
  const ms = ([s, ns]: HrTime) => s * 1000 + ns / 1e6;
  const consumersOf = (jobId: string) =>
    spans()
      .filter((s) => s.kind === SpanKind.CONSUMER && attr(s, 'messaging.message.id') === jobId)
      .sort((a, b) => Number(attr(a, 'bullpen.attempt')) - Number(attr(b, 'bullpen.attempt')));

  it('joins the request, the enqueue, every attempt and every outbound call of a job into one trace', async () => {
    const created = await stack.call('POST', '/v1/lanes/calls/jobs', { name: 'http', data: { url: downstreamUrl } });
    expect(created.status).toBe(201);
    const jobId = String(created.body.id);
    const job = await finished('calls', jobId);
    expect(job).toMatchObject({ state: 'completed', attemptsMade: 3, returnValue: { status: 200, body: { ok: true } } });
    await waitUntil(() => consumersOf(jobId).length === 3 && spans().some((s) => s.kind === SpanKind.SERVER), {
      what: 'the spans of the job to end',
    });

    const server = spans().find((s) => s.kind === SpanKind.SERVER && attr(s, 'http.route') === '/v1/lanes/:lane/jobs');
    const traceId = server?.spanContext().traceId;
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(server).toMatchObject({ name: 'POST /v1/lanes/:lane/jobs' });
    expect(attr(server, 'http.response.status_code')).toBe(201);

    // The PRODUCER span, a child of the server span; its context is what the job carries.
    const sent = spans().filter((s) => s.kind === SpanKind.PRODUCER && attr(s, 'messaging.message.id') === jobId);
    expect(sent).toHaveLength(1);
    const send = sent[0] as ReadableSpan;
    expect(send.name).toBe('send calls');
    expect(send.spanContext().traceId).toBe(traceId);
    expect(send.parentSpanContext?.spanId).toBe(server?.spanContext().spanId);
    expect(send.attributes).toMatchObject({
      'messaging.system': 'bullmq',
      'messaging.destination.name': 'calls',
      'messaging.operation.type': 'send',
    });
    const stored = unwrapJobData(JSON.parse((await stack.producer.hget(jobKeys(config.prefix, 'calls', jobId).job, 'data')) as string));
    expect(stored.meta?.trace?.traceparent).toBe(`00-${traceId}-${send.spanContext().spanId}-01`);

    // Three CONSUMER spans, one per attempt, each a child of the producer span.
    const attempts = consumersOf(jobId);
    expect(attempts.map((s) => [s.name, s.spanContext().traceId, s.parentSpanContext?.spanId, attr(s, 'bullpen.attempt')])).toEqual([
      ['process calls', traceId, send.spanContext().spanId, 1],
      ['process calls', traceId, send.spanContext().spanId, 2],
      ['process calls', traceId, send.spanContext().spanId, 3],
    ]);
    for (const attempt of attempts) {
      expect(attempt.attributes).toMatchObject({
        'messaging.system': 'bullmq',
        'messaging.destination.name': 'calls',
        'messaging.operation.type': 'process',
        'messaging.operation.name': 'process',
        'messaging.message.id': jobId,
        'bullpen.lane': 'calls',
      });
      expect(typeof attr(attempt, 'bullpen.slot_wait_ms')).toBe('number');
    }
    const [first, second, third] = attempts;
    for (const failed of [first, second]) {
      expect(eventNames(failed)).toEqual(['acquired_slot', 'execution_started', 'execution_failed', 'retry_scheduled']);
      expect(attr(failed, 'error.type')).toBe('http_5xx');
      expect(attr(failed, 'bullpen.retry.delay_ms')).toBe(BACKOFF_MS);
      expect(failed?.status.code).toBe(2); // ERROR
    }
    expect(eventNames(third)).toEqual(['acquired_slot', 'execution_started', 'execution_succeeded']);
    expect(attr(third, 'error.type')).toBeUndefined();
    // Each retry starts after the previous attempt's span and its chosen delay.
    expect(ms((second as ReadableSpan).startTime)).toBeGreaterThanOrEqual(ms((first as ReadableSpan).endTime) + BACKOFF_MS / 2);

    // Three CLIENT spans, one under each attempt, whose context went downstream in traceparent.
    const clients = spans()
      .filter((s) => s.kind === SpanKind.CLIENT && s.spanContext().traceId === traceId)
      .sort((a, b) => ms(a.startTime) - ms(b.startTime));
    expect(clients.map((s) => [s.name, s.parentSpanContext?.spanId, attr(s, 'http.response.status_code')])).toEqual([
      ['GET', first?.spanContext().spanId, 503],
      ['GET', second?.spanContext().spanId, 503],
      ['GET', third?.spanContext().spanId, 200],
    ]);
    for (const client of clients) {
      expect(client.attributes).toMatchObject({
        'http.request.method': 'GET',
        'url.full': downstreamUrl,
        'server.address': '127.0.0.1',
      });
    }
    expect(attr(clients[0], 'error.type')).toBe('503');
    // What the downstream server received: the traceparent of each request, in order.
    const received = downstream.requests.map((headers) => headers.traceparent as string | undefined);
    expect(received).toHaveLength(3);
    received.forEach((traceparent, i) => {
      const match = TRACEPARENT.exec(traceparent ?? '');
      expect({ traceId: match?.[1], parent: match?.[2] }).toEqual({ traceId, parent: clients[i]?.spanContext().spanId });
    });

    // The worker's log lines of an attempt carry the attempt span's ids.
    const startedLines = logLines.filter((l) => l.msg === 'attempt started' && l.job_id === jobId);
    expect(startedLines.map((l) => [l.lane, l.attempt, l.trace_id, l.span_id])).toEqual(
      attempts.map((s, i) => ['calls', i + 1, traceId, s.spanContext().spanId]),
    );
  });

  it('records no attempt span of a job whose request was not sampled, instead of a new trace per attempt', async () => {
    // The caller decided not to sample (flags 00): parent-based sampling follows it to the worker.
    const traceId = '3'.repeat(32);
    const created = await stack.call('POST', '/v1/lanes/calls/jobs', { name: 'noop' }, { traceparent: `00-${traceId}-${'4'.repeat(16)}-00` });
    expect(created.status).toBe(201);
    const id = created.body.id as string;
    await finished('calls', id);
    // A job submitted after it is traced: once its attempt span is out, the first one's would be.
    const after = await stack.call('POST', '/v1/lanes/calls/jobs', { name: 'noop' });
    await finished('calls', after.body.id as string);
    await waitUntil(() => consumersOf(after.body.id as string).length === 1, { what: 'the attempt span of the traced job' });
    expect(consumersOf(id)).toEqual([]);
    expect(spans().filter((s) => s.spanContext().traceId === traceId)).toEqual([]);
  });

  it('gives a bulk request one producer span per job, each linked to the request span', async () => {
    const res = await stack.call('POST', '/v1/lanes/calls/jobs/bulk', { jobs: [{ name: 'noop' }, { name: 'noop' }, { name: 'noop' }] });
    expect(res.body.created).toBe(3);
    const ids = (res.body.results as Array<{ id: string }>).map((r) => r.id);
    for (const id of ids) await finished('calls', id);
    await waitUntil(() => ids.every((id) => consumersOf(id).length === 1), { what: 'the consumer spans of the bulk jobs' });

    const request = spans().find((s) => s.kind === SpanKind.SERVER && attr(s, 'http.route') === '/v1/lanes/:lane/jobs/bulk');
    expect(request?.name).toBe('POST /v1/lanes/:lane/jobs/bulk');
    for (const id of ids) {
      const sent = spans().filter((s) => s.kind === SpanKind.PRODUCER && attr(s, 'messaging.message.id') === id);
      expect(sent).toHaveLength(1);
      const send = sent[0] as ReadableSpan;
      expect(send.name).toBe('send calls');
      // Its own trace, linked to the request rather than one parent with a child per job.
      expect(send.parentSpanContext).toBeUndefined();
      expect(send.links.map((l) => l.context.spanId)).toEqual([request?.spanContext().spanId]);
      const [consumer] = consumersOf(id);
      expect(consumer?.spanContext().traceId).toBe(send.spanContext().traceId);
      expect(consumer?.parentSpanContext?.spanId).toBe(send.spanContext().spanId);
    }
    expect(new Set(ids.map((id) => consumersOf(id)[0]?.spanContext().traceId)).size).toBe(3);
  });

  it('records the timeout warning and its escalation on the attempt span of a handler that ignores its signal', async () => {
    const created = await stack.call('POST', '/v1/lanes/slow/jobs', { name: 'stubborn' });
    const jobId = String(created.body.id);
    expect(await finished('slow', jobId)).toMatchObject({ state: 'failed', errorClass: 'timeout' });
    const [attempt] = await waitUntil(() => (consumersOf(jobId).length === 1 ? consumersOf(jobId) : undefined), {
      what: 'the attempt span',
    });
    expect(eventNames(attempt)).toEqual(['acquired_slot', 'execution_started', 'timeout_warning', 'timeout_escalated', 'execution_failed']);
    expect(attempt?.events.find((e) => e.name === 'timeout_warning')?.attributes).toMatchObject({ 'bullpen.timeout_ms': 100 });
    expect(attr(attempt, 'error.type')).toBe('timeout');
    expect(attr(attempt, 'bullpen.will_retry')).toBe(false);
    expect(attr(attempt, 'bullpen.retry.delay_ms')).toBeUndefined();
  });

  it("records a pre-signed URL's credentials and signatures as REDACTED, in url.full and in the payload log", async () => {
    const secrets = ['Pa55word', 'AKIAEXAMPLE1', 'sigv2secret', 'sassecret', 'googsecret', 'amzsecret', 'tok3n', 'apik3y'];
    const query =
      'color=blue&AWSAccessKeyId=AKIAEXAMPLE1&Signature=sigv2secret&sig=sassecret&X-Goog-Signature=googsecret' +
      '&X-Amz-Signature=amzsecret&access_token=tok3n&x-api-key=apik3y&Expires=900';
    const url = `${downstream.url.replace('//', '//signer:Pa55word@')}/object?${query}`;
    const created = await stack.call('POST', '/v1/lanes/calls/jobs', { name: 'http', data: { url } });
    expect(created.status).toBe(201);
    const jobId = String(created.body.id);
    expect(await finished('calls', jobId)).toMatchObject({ state: 'completed' });
    const attempt = () => consumersOf(jobId).at(-1);
    await waitUntil(() => spans().some((s) => s.kind === SpanKind.CLIENT && s.parentSpanContext?.spanId === attempt()?.spanContext().spanId), {
      what: 'the client span of the job',
    });

    const redactedUrl =
      `${downstream.url.replace('//', '//REDACTED:REDACTED@')}/object?color=blue&AWSAccessKeyId=REDACTED&Signature=REDACTED&sig=REDACTED` +
      '&X-Goog-Signature=REDACTED&X-Amz-Signature=REDACTED&access_token=REDACTED&x-api-key=REDACTED&Expires=900';
    const clients = spans().filter((s) => s.kind === SpanKind.CLIENT && consumersOf(jobId).some((c) => c.spanContext().spanId === s.parentSpanContext?.spanId));
    expect(clients.length).toBeGreaterThan(0);
    for (const client of clients) expect(attr(client, 'url.full')).toBe(redactedUrl);

    const started = logLines.filter((l) => l.msg === 'attempt started' && l.job_id === jobId);
    expect(started.length).toBeGreaterThan(0);
    for (const line of started) expect(line.payload).toEqual({ url: redactedUrl });
    const text = JSON.stringify([...started, ...clients.map((c) => c.attributes)]);
    for (const secret of secrets) expect([secret, text.includes(secret)]).toEqual([secret, false]);
  });
});
