// bullpen's protobuf encoder must write exactly what OpenTelemetry's serializer writes: a collector
// cannot tell which one sent a request. Checked on spans from the real SDK and on random spans.
import fc from 'fast-check';
import { SpanKind, SpanStatusCode, TraceFlags, ROOT_CONTEXT, trace, type Attributes, type AttributeValue } from '@opentelemetry/api';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { encodeTraceRequest } from './otlp-trace-encoder';

function official(spans: ReadableSpan[]): Buffer {
  return Buffer.from(ProtobufTraceSerializer.serializeRequest(spans) ?? new Uint8Array());
}

describe('encodeTraceRequest', () => {
  it('writes the bytes of OpenTelemetry’s serializer for spans of the real SDK', () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'bullpen-worker', 'host.name': 'wörker-1' }),
      spanProcessors: [new SimpleSpanProcessor(exporter)],
    });
    const tracer = provider.getTracer('bullpen', '1.2.3');
    const remote = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      traceFlags: TraceFlags.SAMPLED,
      isRemote: true,
    });
    for (let i = 0; i < 300; i += 1) {
      const span = tracer.startSpan('process bench', { kind: SpanKind.CONSUMER }, remote);
      span.setAttributes({ 'messaging.message.id': `job-${i}`, 'bullpen.attempt': i % 3, 'bullpen.ratio': i / 7, 'bullpen.retry': i % 2 === 0 });
      span.addEvent('acquired_slot', { 'bullpen.slot_wait_ms': i });
      span.addEvent('execution_started');
      if (i % 5 === 0) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: `échec ${'x'.repeat(i)}` });
        span.recordException(new Error('boom'));
      }
      span.end();
    }
    // A root span with links and a long attribute (lengths past one byte), from a second tracer.
    const other = provider.getTracer('other');
    const root = other.startSpan('request', {
      kind: SpanKind.SERVER,
      links: [{ context: { traceId: 'ff'.repeat(16), spanId: '01'.repeat(8), traceFlags: 0 }, attributes: { n: -5 } }],
      attributes: { big: 'y'.repeat(70_000), list: ['a', 'b'], nums: [1, 2.5, -3] },
    });
    root.end();
    const spans = exporter.getFinishedSpans();
    expect(spans).toHaveLength(301);
    expect(Buffer.from(encodeTraceRequest(spans)).equals(official(spans))).toBe(true);
  });

  it('writes the same bytes as OpenTelemetry’s serializer for random spans', () => {
    const hex = (length: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: length, maxLength: length });
    // ASCII, one-, two- and three-byte UTF-8 and lone surrogates, short and past 127 bytes.
    const mixed = fc.constantFrom('a', 'Z', '~', 'é', 'ß', '€', '中', '😀', '\ud800', '\udfff');
    const text = fc.oneof(fc.string(), fc.string({ unit: mixed, maxLength: 80 }), fc.string({ unit: 'binary', maxLength: 300 }), fc.string({ minLength: 100, maxLength: 200 }));
    const scalar: fc.Arbitrary<AttributeValue> = fc.oneof(
      text,
      fc.boolean(),
      fc.integer(),
      fc.maxSafeInteger(),
      fc.double(),
      fc.constantFrom(2 ** 60, -(2 ** 62), Number.MAX_SAFE_INTEGER + 2),
    );
    const value: fc.Arbitrary<AttributeValue> = fc.oneof(
      scalar,
      fc.array(fc.string(), { maxLength: 4 }),
      fc.array(fc.double(), { maxLength: 4 }),
    );
    const attributes: fc.Arbitrary<Attributes> = fc.dictionary(fc.string({ minLength: 1 }), value, { maxKeys: 6 });
    const hrTime = fc.tuple(fc.integer({ min: 0, max: 2 ** 32 - 1 }), fc.integer({ min: 0, max: 999_999_999 }));
    const context = fc.record({ traceId: hex(32), spanId: hex(16), traceFlags: fc.integer({ min: 0, max: 255 }), isRemote: fc.boolean() });
    const resources = [
      resourceFromAttributes({ 'service.name': 'a' }),
      resourceFromAttributes({ 'service.name': 'b', 'deployment.environment': 'prod' }),
    ];
    const scopes = [{ name: 'bullpen' }, { name: 'other', version: '0.1.0', schemaUrl: 'https://opentelemetry.io/schemas/1.30.0' }];
    const span: fc.Arbitrary<ReadableSpan> = fc
      .record({
        name: text,
        kind: fc.constantFrom(SpanKind.INTERNAL, SpanKind.SERVER, SpanKind.CLIENT, SpanKind.PRODUCER, SpanKind.CONSUMER),
        context,
        parent: fc.option(context, { nil: undefined }),
        startTime: hrTime,
        endTime: hrTime,
        status: fc.record({ code: fc.constantFrom(SpanStatusCode.UNSET, SpanStatusCode.OK, SpanStatusCode.ERROR), message: fc.option(text, { nil: undefined }) }),
        attributes,
        events: fc.array(fc.record({ name: text, time: hrTime, attributes: fc.option(attributes, { nil: undefined }), droppedAttributesCount: fc.nat(3) }), { maxLength: 4 }),
        links: fc.array(fc.record({ context, attributes: fc.option(attributes, { nil: undefined }), droppedAttributesCount: fc.option(fc.nat(3), { nil: undefined }) }), { maxLength: 2 }),
        dropped: fc.tuple(fc.nat(300), fc.nat(3), fc.nat(3)),
        resource: fc.nat(resources.length - 1),
        scope: fc.nat(scopes.length - 1),
      })
      .map((r) => ({
        name: r.name,
        kind: r.kind,
        spanContext: () => r.context,
        parentSpanContext: r.parent,
        startTime: r.startTime,
        endTime: r.endTime,
        duration: [0, 0],
        ended: true,
        status: r.status,
        attributes: r.attributes,
        events: r.events,
        links: r.links,
        droppedAttributesCount: r.dropped[0],
        droppedEventsCount: r.dropped[1],
        droppedLinksCount: r.dropped[2],
        resource: resources[r.resource]!,
        instrumentationScope: scopes[r.scope]!,
      }));
    fc.assert(
      fc.property(fc.array(span, { maxLength: 12 }), (spans) => {
        expect(Buffer.from(encodeTraceRequest(spans)).toString('hex')).toBe(official(spans).toString('hex'));
      }),
      { numRuns: 300 },
    );
  });
});
