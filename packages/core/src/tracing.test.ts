import { InMemorySpanExporter } from '@opentelemetry/sdk-trace-base';
import { SpanKind, context, metrics, propagation, trace } from '@opentelemetry/api';
import { loadConfig } from './config';
import { createLogger } from './logger';
import { extractTraceContext, injectTraceContext, startTracing, tracer } from './tracing';

describe('tracing', () => {
  it('is off without an endpoint and on with one, unless OTEL_SDK_DISABLED', () => {
    expect(loadConfig({}).tracing.enabled).toBe(false);
    expect(loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }).tracing.enabled).toBe(true);
    expect(
      loadConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' }).tracing.enabled,
    ).toBe(false);
    expect(() => loadConfig({ OTEL_TRACES_SAMPLER_ARG: '2' })).toThrow(/OTEL_TRACES_SAMPLER_ARG: expected a number from 0 to 1/);
  });

  it('encodes spans as protobuf unless http/json is asked for, and names the variable of a protocol it cannot speak', () => {
    expect(loadConfig({}).tracing.protocol).toBe('http/protobuf');
    expect(loadConfig({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }).tracing.protocol).toBe('http/json');
    expect(
      loadConfig({ OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf' }).tracing.protocol,
    ).toBe('http/protobuf');
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' })).toThrow(
      /OTEL_EXPORTER_OTLP_PROTOCOL: expected http\/protobuf or http\/json \(grpc is not supported\), got "grpc"/,
    );
    expect(() => loadConfig({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'json' })).toThrow(/OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: expected/);
  });

  it('reads the span limits as the SDK does, and names a limit that is not a count', () => {
    expect(loadConfig({}).tracing.spanLimits).toEqual({
      attributeCountLimit: 128,
      attributeValueLengthLimit: Infinity,
      eventCountLimit: 128,
      linkCountLimit: 128,
      attributePerEventCountLimit: 128,
      attributePerLinkCountLimit: 128,
    });
    const limits = loadConfig({ OTEL_ATTRIBUTE_COUNT_LIMIT: '10', OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT: '20', OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT: '30' }).tracing.spanLimits;
    expect([limits.attributeCountLimit, limits.attributeValueLengthLimit]).toEqual([20, 30]);
    expect(() => loadConfig({ OTEL_SPAN_EVENT_COUNT_LIMIT: 'many' })).toThrow(/OTEL_SPAN_EVENT_COUNT_LIMIT: expected an integer from 0/);
  });

  it('records spans and carries their context through a plain object', async () => {
    const exporter = new InMemorySpanExporter();
    const tracing = startTracing(loadConfig({}).tracing, 'bullpen-test', createLogger('test'), { exporter });
    const parent = tracer().startSpan('request', { kind: SpanKind.SERVER });
    const carrier = injectTraceContext(trace.setSpan(context.active(), parent));
    expect(carrier.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const child = tracer().startSpan('attempt', { kind: SpanKind.CONSUMER }, extractTraceContext(carrier));
    child.end();
    parent.end();
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.name)).toEqual(['attempt', 'request']);
    expect(spans[0]?.spanContext().traceId).toBe(parent.spanContext().traceId);
    expect(spans[0]?.parentSpanContext?.spanId).toBe(parent.spanContext().spanId);
    await tracing.shutdown();
  });

  it("starts no metrics pipeline of the SDK's, whatever OTEL_METRICS_EXPORTER says", async () => {
    // The SDK reads these from the environment itself: `console` would write its own lines to
    // the app's stdout, `prometheus` open a listener of its own.
    const saved = process.env.OTEL_METRICS_EXPORTER;
    process.env.OTEL_METRICS_EXPORTER = 'console';
    // The case before registered its SDK as the global one.
    for (const api of [trace, context, propagation]) api.disable();
    try {
      const tracing = startTracing(loadConfig({}).tracing, 'bullpen-test', createLogger('test'), { exporter: new InMemorySpanExporter() });
      expect(metrics.getMeterProvider().constructor.name).toBe('NoopMeterProvider');
      await tracing.shutdown();
    } finally {
      if (saved === undefined) delete process.env.OTEL_METRICS_EXPORTER;
      else process.env.OTEL_METRICS_EXPORTER = saved;
      metrics.disable();
    }
  });
});
