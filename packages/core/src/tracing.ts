// OpenTelemetry for every app: the SDK with the OTLP/HTTP trace exporter, configured by the
// standard OTEL_* variables. Spans go out as protobuf unless http/json is asked for: besides being
// OpenTelemetry's default, it costs the exporting process about a quarter less CPU per span than
// JSON, which a worker running thousands of jobs a second notices. With no endpoint, or
// OTEL_SDK_DISABLED=true, the SDK is never started: the global tracer stays OpenTelemetry's no-op
// one, so no span is created, no exporter retries and nothing is logged.
import { context, diag, propagation, trace, type Context, type Tracer } from '@opentelemetry/api';
import type { ReadableSpan, Sampler, SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { TracingConfig } from './config';
import type { LeanSpanFactory } from './lean-span';
import type { Logger } from './logger';
import { redactUrl } from './url-redaction';

export const TRACER_NAME = 'bullpen';

export interface Tracing {
  readonly enabled: boolean;
  shutdown(): Promise<void>;
}

export interface StartTracingOptions {
  /** Export here instead of OTLP (tests use an in-memory exporter); spans are exported one by one. */
  exporter?: SpanExporter;
}

const OFF: Tracing = { enabled: false, shutdown: async () => undefined };

/**
 * Starts the SDK when tracing is on. `serviceName` is the app's default service name; `logger` is
 * where OpenTelemetry's own diagnostics go (otel-diagnostics.ts), a failing collector included.
 */
export function startTracing(settings: TracingConfig, serviceName: string, logger: Logger, options: StartTracingOptions = {}): Tracing {
  if (!settings.enabled && !options.exporter) return OFF;
  // The SDK and its exporters are loaded only here: loading them costs a process about 0.7 s and
  // 50 MB of RSS (sdk-node brings every exporter and instrumentation base it supports), which a
  // process with tracing off should not pay.
  const { NodeSDK } = require('@opentelemetry/sdk-node') as typeof import('@opentelemetry/sdk-node');
  const { resourceFromAttributes } = require('@opentelemetry/resources') as typeof import('@opentelemetry/resources');
  const { BatchSpanProcessor, RandomIdGenerator, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base') as typeof import('@opentelemetry/sdk-trace-base');
  const { OtelDiagnostics } = require('./otel-diagnostics') as typeof import('./otel-diagnostics');
  const diagnostics = new OtelDiagnostics(logger, settings.logLevel);
  // Before the exporter and processor are built: they report bad OTEL_* settings as they start.
  diagnostics.install();
  const exporter = diagnostics.watch(options.exporter ?? otlpExporter(settings.protocol));
  const processor = options.exporter ? new SimpleSpanProcessor(exporter) : new BatchSpanProcessor(exporter);
  const resource = resourceFromAttributes({ ...settings.resourceAttributes, 'service.name': settings.serviceName ?? serviceName });
  const sampler = samplerOf(settings);
  const idGenerator = new RandomIdGenerator();
  // The SDK installs a console logger of its own when OTEL_LOG_LEVEL is set; with no logger in place
  // it does so without warning about the one it replaces, and ours replaces it just after.
  diag.disable();
  const sdk = new NodeSDK({
    resource,
    autoDetectResources: false,
    spanProcessors: [processor],
    sampler,
    idGenerator,
    spanLimits: { ...settings.spanLimits },
    instrumentations: [],
    // Tracing only: left to themselves, the SDK's metrics and logs pipelines start from
    // OTEL_METRICS_EXPORTER and OTEL_LOGS_EXPORTER (an OTLP push by default; `prometheus` opens an
    // unauthenticated listener on every interface, `console` writes non-JSON lines to stdout).
    // bullpen's metrics are served by each app's /metrics, and its logs are its own.
    metricReaders: [],
    logRecordProcessors: [],
  });
  diagnostics.install();
  sdk.start();
  // The SDK's tracer names the scope; lean spans share that object, so an export groups them with
  // the tracer's own spans.
  const scope = (tracer() as Partial<Pick<ReadableSpan, 'instrumentationScope'>>).instrumentationScope ?? { name: TRACER_NAME };
  const { LeanSpanFactory } = require('./lean-span') as typeof import('./lean-span');
  leanSpanFactory = new LeanSpanFactory({ sampler, idGenerator, processor, resource, scope, limits: settings.spanLimits });
  urlRedactKeys = settings.urlRedactKeys;
  return {
    enabled: true,
    shutdown: () => {
      leanSpanFactory = undefined;
      urlRedactKeys = undefined;
      return sdk.shutdown().finally(() => diagnostics.close());
    },
  };
}

let leanSpanFactory: LeanSpanFactory | undefined;
/** LOG_REDACT_KEYS of the tracing started, for the URLs spans record. */
let urlRedactKeys: ReadonlySet<string> | undefined;

/**
 * `url` as a span records it (url.full): no credentials, and REDACTED for the values of query
 * parameters that carry secrets (url-redaction.ts: OpenTelemetry's list, and LOG_REDACT_KEYS).
 */
export function spanUrl(url: URL | string): string {
  return redactUrl(url, urlRedactKeys ?? new Set());
}

/** The sampler OTEL_TRACES_SAMPLER names, as OpenTelemetry's SDK builds it from the same variables. */
function samplerOf(settings: TracingConfig): Sampler {
  const { AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, TraceIdRatioBasedSampler } =
    require('@opentelemetry/sdk-trace-base') as typeof import('@opentelemetry/sdk-trace-base');
  switch (settings.sampler) {
    case 'always_on':
      return new AlwaysOnSampler();
    case 'always_off':
      return new AlwaysOffSampler();
    case 'traceidratio':
      return new TraceIdRatioBasedSampler(settings.sampleRatio);
    case 'parentbased_always_on':
      return new ParentBasedSampler({ root: new AlwaysOnSampler() });
    case 'parentbased_always_off':
      return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio':
      return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(settings.sampleRatio) });
  }
}

/**
 * Where a hot path gets its recording spans while tracing is on (undefined when it is off): lean
 * spans, with the SDK's sampler, ids, limits, resource and span processor, which hold what they
 * record in a fraction of the SDK span's memory (lean-span.ts). A worker starts one per attempt.
 */
export function leanSpans(): LeanSpanFactory | undefined {
  return leanSpanFactory;
}

function otlpExporter(protocol: TracingConfig['protocol']): SpanExporter {
  if (protocol === 'http/json') {
    const { OTLPTraceExporter } = require('@opentelemetry/exporter-trace-otlp-http') as typeof import('@opentelemetry/exporter-trace-otlp-http');
    return new OTLPTraceExporter();
  }
  return protobufExporter();
}

/**
 * OpenTelemetry's OTLP/HTTP exporter (its endpoint, headers, timeout, compression and retries
 * from the OTEL_EXPORTER_OTLP_* variables) with bullpen's protobuf encoder in place of the
 * serializer of `@opentelemetry/exporter-trace-otlp-proto`: the same bytes at less than half the
 * CPU, which a worker exporting a span per attempt spends on its event loop.
 */
function protobufExporter(): SpanExporter {
  const { OTLPExporterBase } = require('@opentelemetry/otlp-exporter-base') as typeof import('@opentelemetry/otlp-exporter-base');
  const { convertLegacyHttpOptions, createOtlpHttpExportDelegate } =
    require('@opentelemetry/otlp-exporter-base/node-http') as typeof import('@opentelemetry/otlp-exporter-base/build/src/index-node-http');
  const { ProtobufTraceSerializer, TraceExporterMetricsHelper } = require('@opentelemetry/otlp-transformer') as typeof import('@opentelemetry/otlp-transformer');
  const { encodeTraceRequest } = require('./otlp-trace-encoder') as typeof import('./otlp-trace-encoder');
  const serializer: typeof ProtobufTraceSerializer = {
    serializeRequest: encodeTraceRequest,
    deserializeResponse: (data) => ProtobufTraceSerializer.deserializeResponse(data),
  };
  const options = convertLegacyHttpOptions({}, 'TRACES', 'v1/traces', { 'Content-Type': 'application/x-protobuf' });
  return new OTLPExporterBase(createOtlpHttpExportDelegate(options, serializer, 'otlp_http_span_exporter', TraceExporterMetricsHelper, undefined));
}

export function tracer(): Tracer {
  return trace.getTracer(TRACER_NAME);
}

/** W3C trace context of `ctx` as a plain object, for storing with a job. Empty when tracing is off. */
export function injectTraceContext(ctx: Context = context.active()): Record<string, string> {
  const carrier: Record<string, string> = {};
  propagation.inject(ctx, carrier);
  return carrier;
}

export function extractTraceContext(carrier: Record<string, string> | undefined, base: Context = context.active()): Context {
  return carrier ? propagation.extract(base, carrier) : base;
}
