// A lean span must record what OpenTelemetry's own span records for the same calls, under the
// same limits, and hand span processors the same ReadableSpan.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, TraceFlags, trace, type Span } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler,
  BasicTracerProvider,
  InMemorySpanExporter,
  ParentBasedSampler,
  RandomIdGenerator,
  SimpleSpanProcessor,
  TraceIdRatioBasedSampler,
  type ReadableSpan,
  type Sampler,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { loadConfig, type SpanLimits } from './config';
import { LeanSpan, LeanSpanFactory } from './lean-span';

const DEFAULT_LIMITS = loadConfig({}).tracing.spanLimits;
const remoteParent = trace.setSpanContext(ROOT_CONTEXT, {
  traceId: '0af7651916cd43dd8448eb211c80319c',
  spanId: 'b7ad6b7169203331',
  traceFlags: TraceFlags.SAMPLED,
  isRemote: true,
});

/** The SDK's tracer and a lean span factory over the same sampler, limits, resource and exporter. */
function both(limits: SpanLimits, sampler: Sampler = new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(1) })) {
  const exporter = new InMemorySpanExporter();
  const simple = new SimpleSpanProcessor(exporter);
  // A processor's onEnding sees the end time while the span can still take attributes.
  const processor: SpanProcessor = {
    onStart: (span, ctx) => simple.onStart(span, ctx),
    onEnding: (span) => span.setAttribute('test.end_seen_in_onEnding', span.endTime[0] > 0 && span.isRecording()),
    onEnd: (span) => simple.onEnd(span),
    forceFlush: () => simple.forceFlush(),
    shutdown: () => simple.shutdown(),
  };
  const resource = resourceFromAttributes({ 'service.name': 'bullpen-test' });
  const provider = new BasicTracerProvider({ resource, spanProcessors: [processor], sampler, spanLimits: { ...limits } });
  const sdk = provider.getTracer('bullpen');
  const lean = new LeanSpanFactory({
    sampler,
    idGenerator: new RandomIdGenerator(),
    processor,
    resource,
    scope: { name: 'bullpen' },
    limits,
  });
  return { exporter, sdk, lean };
}

const boom = new Error('boom');

/** Everything a handler might do to its attempt's span, including what the SDK refuses or limits. */
function script(span: Span): void {
  span.setAttribute('bullpen.slot_wait_ms', 3);
  span.setAttributes({ 'bullpen.note': 'a long attribute value', list: ['x', 'yyyyyyyy'], flag: false });
  span.setAttribute('', 1);
  span.setAttribute('nothing', undefined as unknown as string);
  span.setAttribute('object', { a: 1 } as unknown as string);
  span.addEvent('acquired_slot', { 'bullpen.slot_wait_ms': 3 });
  span.addEvent('execution_started');
  span.addEvent('timed', performance.now());
  span.addEvent('many', { a: 1, b: 'bbbbbbbbbb', c: true, '': 2 });
  span.recordException(boom);
  span.recordException('just a message');
  span.addLink({ context: { traceId: 'ff'.repeat(16), spanId: '01'.repeat(8), traceFlags: 0 }, attributes: { l: 1, m: 'mmmmmmmm' } });
  span.setStatus({ code: SpanStatusCode.ERROR, message: 'failed' });
  span.setStatus({ code: SpanStatusCode.OK });
  span.setStatus({ code: SpanStatusCode.ERROR, message: 'too late: OK is final' });
  span.updateName('process renamed');
  span.end();
  span.setAttribute('after.end', 1);
  span.addEvent('after.end');
  span.end();
}

/** What must agree (times only to the millisecond: the two spans start and end moments apart). */
function view(span: ReadableSpan) {
  return {
    name: span.name,
    kind: span.kind,
    traceId: span.spanContext().traceId,
    traceFlags: span.spanContext().traceFlags,
    parent: span.parentSpanContext?.spanId,
    attributes: span.attributes,
    events: span.events.map((e) => ({ name: e.name, attributes: e.attributes, dropped: e.droppedAttributesCount })),
    links: span.links,
    status: span.status,
    dropped: [span.droppedAttributesCount, span.droppedEventsCount, span.droppedLinksCount],
    ended: span.ended,
    resource: span.resource.attributes,
    scope: span.instrumentationScope.name,
  };
}

describe('LeanSpan', () => {
  it.each([
    ['default limits', DEFAULT_LIMITS],
    [
      'tight limits',
      { attributeCountLimit: 3, attributeValueLengthLimit: 4, eventCountLimit: 2, linkCountLimit: 0, attributePerEventCountLimit: 1, attributePerLinkCountLimit: 1 },
    ],
    [
      'limits set by OTEL_* variables',
      loadConfig({ OTEL_ATTRIBUTE_COUNT_LIMIT: '2', OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT: '6', OTEL_SPAN_EVENT_COUNT_LIMIT: '3', OTEL_SPAN_ATTRIBUTE_PER_LINK_COUNT_LIMIT: '0' }).tracing
        .spanLimits,
    ],
  ])('records what the SDK span records, under %s', (_label, limits) => {
    const { exporter, sdk, lean } = both(limits);
    const attributes = () => ({ 'messaging.system': 'bullmq', 'messaging.message.id': 'job-1', 'bullpen.attempt': 2 });
    script(sdk.startSpan('process bench', { kind: SpanKind.CONSUMER, attributes: attributes() }, remoteParent));
    script(lean.start('process bench', SpanKind.CONSUMER, remoteParent, attributes()));
    const [fromSdk, fromLean] = exporter.getFinishedSpans();
    expect(fromLean).toBeInstanceOf(LeanSpan);
    expect(fromSdk).not.toBeInstanceOf(LeanSpan);
    expect(view(fromLean!)).toEqual(view(fromSdk!));
    const ms = (t: [number, number]) => t[0] * 1000 + t[1] / 1e6;
    expect(Math.abs(ms(fromLean!.startTime) - ms(fromSdk!.startTime))).toBeLessThan(50);
    expect(ms(fromLean!.endTime)).toBeGreaterThanOrEqual(ms(fromLean!.startTime));
    const eventTimes = fromLean!.events.map((e) => ms(e.time));
    expect(eventTimes).toEqual([...eventTimes].sort((a, b) => a - b));
    expect(eventTimes[0]).toBeGreaterThanOrEqual(ms(fromLean!.startTime));
    expect(ms(fromLean!.duration)).toBeCloseTo(ms(fromLean!.endTime) - ms(fromLean!.startTime), 3);
  });

  it('starts a new trace without a valid parent and keeps the parent’s trace otherwise', () => {
    const { lean } = both(DEFAULT_LIMITS);
    const root = lean.start('root', SpanKind.INTERNAL, ROOT_CONTEXT, {});
    const child = lean.start('child', SpanKind.CONSUMER, trace.setSpan(ROOT_CONTEXT, root), {});
    expect(root.spanContext().traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(child.spanContext().traceId).toBe(root.spanContext().traceId);
    expect((child as LeanSpan).parentSpanContext?.spanId).toBe(root.spanContext().spanId);
    expect((root as LeanSpan).parentSpanContext).toBeUndefined();
  });

  it('follows the sampler: a dropped span records nothing but carries its context on', () => {
    const { exporter, lean } = both(DEFAULT_LIMITS, new ParentBasedSampler({ root: new AlwaysOffSampler() }));
    const dropped = lean.start('root', SpanKind.CONSUMER, ROOT_CONTEXT, { a: 1 });
    expect(dropped).not.toBeInstanceOf(LeanSpan);
    expect(dropped.isRecording()).toBe(false);
    expect(dropped.spanContext().traceFlags).toBe(TraceFlags.NONE);
    expect(trace.isSpanContextValid(dropped.spanContext())).toBe(true);
    dropped.end();
    // A sampled remote parent decides for its child, whatever the root sampler says.
    const kept = lean.start('child', SpanKind.CONSUMER, remoteParent, {});
    expect(kept.isRecording()).toBe(true);
    kept.end();
    expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual(['child']);
  });
});
