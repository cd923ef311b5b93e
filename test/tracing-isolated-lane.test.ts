// An isolated lane runs its handlers in worker threads; its jobs must still leave one trace. The
// worker runs as a process exporting OTLP/HTTP to a collector stand-in here, with a batch delay so
// long that spans leave only when the worker shuts down: the `http` handler's outbound call, made in
// a handler thread, must be a CLIENT span under the attempt's CONSUMER span, send its traceparent
// downstream, and reach the collector when the worker stops on SIGTERM. It runs once with the
// default encoding, protobuf, and once with OTEL_EXPORTER_OTLP_PROTOCOL=http/json.
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createLaneQueue, createRedis, loadConfig, wrapJobData } from '@bullpen/core';
import type { Queue } from 'bullmq';
import type IORedis from 'ioredis';
import { cleanupPrefix, standaloneUrl } from './support/config';
import { redisUrl, testPrefix, waitUntil } from './support/wait';
import { WORKER_MAIN, spawnWorker, writeLanesFile, type WorkerProcess } from './fixtures/worker-process';
import { startFlakyServer, type FlakyServer } from './support/flaky-server';
import { startOtlpCollector, type OtlpCollector } from './support/otlp-collector';

const SPAN_KIND_CONSUMER = 5;
const SPAN_KIND_CLIENT = 3;

// [OTEL_EXPORTER_OTLP_PROTOCOL (unset: the default), the content type the collector must receive]
const ENCODINGS: [string | undefined, string][] = [
  [undefined, 'application/x-protobuf'],
  ['http/json', 'application/json'],
];

describe.each(ENCODINGS)('tracing through an isolated lane (OTLP protocol %s)', (protocol, contentType) => {
  let collector: OtlpCollector;
  let downstream: FlakyServer;
  let downstreamUrl: string;
  let worker: WorkerProcess | undefined;
  let queue: Queue;
  let redis: IORedis;
  let prefix: string;
  let lanesFile: ReturnType<typeof writeLanesFile>;

  beforeAll(async () => {
    if (!existsSync(WORKER_MAIN)) throw new Error(`${WORKER_MAIN} is missing: run npx tsc -b apps/worker first`);
    collector = await startOtlpCollector();
    downstream = await startFlakyServer(0);
    downstreamUrl = `${downstream.url}/hook`;
    prefix = testPrefix('trace-iso');
    lanesFile = writeLanesFile({ lanes: { iso: { concurrency: 1, attempts: 1, isolated: true } } });
    // The downstream server listens on loopback, which the http handler calls only when allowed.
    const env = { REDIS_URL: redisUrl(), BULLPEN_PREFIX: prefix, LANES_FILE: lanesFile.file, HTTP_HANDLER_ALLOWED_HOSTS: '127.0.0.1' };
    const config = loadConfig(env);
    redis = createRedis(standaloneUrl(config), 'worker', 'bullpen:test');
    queue = createLaneQueue(config, 'iso', redis);
    worker = spawnWorker({
      ...env,
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
      ...(protocol ? { OTEL_EXPORTER_OTLP_PROTOCOL: protocol } : {}),
      // Nothing is exported on a timer during the test: what arrives was flushed at shutdown.
      OTEL_BSP_SCHEDULE_DELAY: '600000',
    });
    await worker.started();
  });

  afterAll(async () => {
    await worker?.stop('SIGKILL');
    await queue?.close();
    await redis?.quit();
    await cleanupPrefix(prefix);
    lanesFile?.cleanup();
    await downstream?.close();
    await collector?.close();
  });

  it("continues the job's trace in the handler thread and exports the thread's spans on shutdown", async () => {
    const traceId = randomBytes(16).toString('hex');
    const producerSpanId = randomBytes(8).toString('hex');
    const job = await queue.add(
      'http',
      wrapJobData({ url: downstreamUrl }, { v: 1, tenant: 't', trace: { traceparent: `00-${traceId}-${producerSpanId}-01` } }),
    );
    await waitUntil(async () => (await queue.getJobState(job.id!)) === 'completed', { what: 'the http job to complete' });

    // The outbound call carried the job's trace, under a span of its own.
    expect(downstream.requests).toHaveLength(1);
    const traceparent = String(downstream.requests[0]?.traceparent ?? '');
    const [, sentTraceId, clientSpanId, flags] = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(traceparent) ?? [];
    expect(sentTraceId).toBe(traceId);
    expect(flags).toBe('01');

    expect(await worker!.stop('SIGTERM')).toBe(0);
    expect(collector.exports.length).toBeGreaterThan(0);
    expect(new Set(collector.exports.map((e) => e.contentType))).toEqual(new Set([contentType]));
    const ofTrace = collector.spans().filter((s) => s.traceId === traceId);
    const consumer = ofTrace.find((s) => s.kind === SPAN_KIND_CONSUMER);
    const client = ofTrace.find((s) => s.kind === SPAN_KIND_CLIENT);
    expect(consumer).toMatchObject({ service: 'bullpen-worker', name: 'process iso', parentSpanId: producerSpanId });
    expect(consumer?.attributes).toMatchObject({ 'messaging.message.id': job.id, 'bullpen.lane': 'iso' });
    expect(client).toMatchObject({ service: 'bullpen-worker', name: 'GET', spanId: clientSpanId, parentSpanId: consumer?.spanId });
    expect(client?.attributes).toMatchObject({ 'http.request.method': 'GET', 'url.full': downstreamUrl, 'http.response.status_code': 200 });
  });
});
