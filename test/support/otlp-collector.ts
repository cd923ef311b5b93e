// A stand-in OTLP/HTTP collector for tests: accepts POST /v1/traces, answers 200 and keeps each
// body as it was received; spans() reads them back as flat spans, protobuf or JSON. Set `refuse`
// to an HTTP status to have it refuse exports instead (counted in `refused`, not kept).
import http from 'node:http';
import type { AddressInfo } from 'node:net';

const { readTraceRequest } = require('../../bench/lib/otlp-protobuf') as {
  readTraceRequest(contentType: string, body: Buffer): { resourceSpans?: any[] };
};

export interface ExportedSpan {
  service: string | undefined;
  /** The string attributes of the span's resource. */
  resource: Record<string, string>;
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
}

export interface OtlpCollector {
  /** http://127.0.0.1:<port>, for OTEL_EXPORTER_OTLP_ENDPOINT. */
  url: string;
  /** Every export received, in order: its content type and body. */
  exports: { contentType: string; body: Buffer }[];
  /** An HTTP status to answer exports with instead of 200 (the export is then not kept); default none. */
  refuse: number | undefined;
  /** Exports refused so far. */
  refused: number;
  /** The spans of the exports received so far. */
  spans(): ExportedSpan[];
  close(): Promise<void>;
}

export async function startOtlpCollector(): Promise<OtlpCollector> {
  const exports: OtlpCollector['exports'] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      if (collector.refuse !== undefined) {
        collector.refused += 1;
        res.writeHead(collector.refuse, { 'content-type': 'text/plain' }).end('refused by the test');
        return;
      }
      if (req.method === 'POST' && req.url === '/v1/traces') exports.push({ contentType: req.headers['content-type'] ?? '', body: Buffer.concat(chunks) });
      // An empty body is a valid ExportTraceServiceResponse in either encoding.
      res.writeHead(200, { 'content-type': req.headers['content-type'] ?? 'application/json' }).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const collector: OtlpCollector = {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    exports,
    refuse: undefined,
    refused: 0,
    spans: () => exports.flatMap(spansOf),
    close: () => new Promise((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
  return collector;
}

function spansOf({ contentType, body }: { contentType: string; body: Buffer }): ExportedSpan[] {
  const spans: ExportedSpan[] = [];
  const { resourceSpans = [] } = readTraceRequest(contentType, body);
  for (const rs of resourceSpans) {
    const resource: Record<string, string> = {};
    for (const a of rs.resource?.attributes ?? []) if (typeof a.value?.stringValue === 'string') resource[a.key] = a.value.stringValue;
    const service = resource['service.name'];
    for (const scope of rs.scopeSpans ?? []) {
      for (const s of scope.spans ?? []) {
        const attributes: Record<string, unknown> = {};
        for (const a of s.attributes ?? []) attributes[a.key] = Object.values(a.value ?? {})[0];
        spans.push({ service, resource, traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId || undefined, name: s.name, kind: s.kind, attributes });
      }
    }
  }
  return spans;
}
