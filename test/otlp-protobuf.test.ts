// The bench's OTLP sink and the tests' stand-in collector read protobuf exports with a decoder of
// our own (bench/lib/otlp-protobuf.js). It must read a protobuf export exactly as OpenTelemetry's
// own JSON encoding of the same spans reads.
import { SpanKind, SpanStatusCode, context, trace } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';

const { readTraceRequest } = require('../bench/lib/otlp-protobuf') as {
  readTraceRequest(contentType: string, body: Buffer): { resourceSpans?: any[] };
};

describe('the OTLP protobuf decoder', () => {
  it('reads a protobuf trace export as the same spans as its JSON encoding', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'bullpen-worker' }),
      spanProcessors: [new SimpleSpanProcessor(exporter)],
    });
    const tracer = provider.getTracer('bullpen');
    const parent = tracer.startSpan('POST /v1/lanes/:lane/jobs', { kind: SpanKind.SERVER });
    const child = tracer.startSpan(
      'process émails',
      { kind: SpanKind.CONSUMER, attributes: { 'bullpen.lane': 'emails', 'bullpen.attempt': 2, 'bullpen.delta': -7, ratio: 0.25, retry: true, tags: ['a', 'b'] } },
      trace.setSpan(context.active(), parent),
    );
    child.addEvent('acquired_slot', { 'bullpen.slot_wait_ms': 3 });
    child.setStatus({ code: SpanStatusCode.ERROR, message: 'boom' });
    child.end();
    parent.end();
    const spans = exporter.getFinishedSpans();

    const fromJson = readTraceRequest('application/json', Buffer.from(JsonTraceSerializer.serializeRequest(spans)!));
    const fromProtobuf = readTraceRequest('application/x-protobuf', Buffer.from(ProtobufTraceSerializer.serializeRequest(spans)!));
    expect(fromProtobuf.resourceSpans).toHaveLength(1);
    expect(comparable(fromProtobuf)).toEqual(comparable(fromJson));
    expect(comparable(fromProtobuf)[0]?.spans.map((s: any) => s.name)).toEqual(['process émails', 'POST /v1/lanes/:lane/jobs']);
    await provider.shutdown();
  });

  it('rejects a truncated body instead of reading garbage', () => {
    const body = Buffer.from([0x0a, 0x10, 0x0a]);
    expect(() => readTraceRequest('application/x-protobuf', body)).toThrow(/truncated/);
  });
});

/** What both encodings must agree on; the JSON form leaves out empty fields that protobuf keeps. */
function comparable(request: { resourceSpans?: any[] }) {
  return (request.resourceSpans ?? []).map((rs) => ({
    resource: rs.resource?.attributes,
    spans: (rs.scopeSpans ?? []).flatMap((ss: any) =>
      (ss.spans ?? []).map((s: any) => ({
        traceId: s.traceId,
        spanId: s.spanId,
        parentSpanId: s.parentSpanId || undefined,
        name: s.name,
        kind: s.kind,
        attributes: s.attributes ?? [],
        events: (s.events ?? []).map((e: any) => ({ name: e.name, attributes: e.attributes ?? [] })),
        status: { code: s.status?.code ?? 0, message: s.status?.message ?? '' },
      })),
    ),
  }));
}
