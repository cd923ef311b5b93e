// A stand-in OTLP/HTTP collector for the tracing measurement: accepts POST /v1/traces, answers
// 200, and counts the spans it was sent per service (protobuf or JSON bodies).
//
// A real collector runs elsewhere; this one shares the bench machine's cores with the processes
// being measured. So it only keeps the bodies while they arrive and decodes them when asked for
// its counts (after a drain), lest its own decoding slow the worker it is measuring. A long run
// (the soak, `countOnArrival`) counts each body as it arrives instead, so that it holds none.
'use strict';
const http = require('node:http');
const { readTraceRequest } = require('./otlp-protobuf');

/** @param {{ countOnArrival?: boolean }} [options] */
function startOtlpSink({ countOnArrival = false } = {}) {
  const stats = { requests: 0, bytes: 0, spans: 0, byService: {}, unparsed: 0 };
  /** Received and not yet counted: [content type, body]. */
  let pending = [];
  const countPending = () => {
    for (const [contentType, body] of pending) count(stats, contentType, body);
    pending = [];
  };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (req.method === 'POST' && req.url === '/v1/traces') {
        stats.requests += 1;
        stats.bytes += body.length;
        const contentType = req.headers['content-type'] ?? '';
        if (countOnArrival) count(stats, contentType, body);
        else pending.push([contentType, body]);
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      resolve({
        endpoint: `http://127.0.0.1:${server.address().port}`,
        /** A copy of the counts so far (this is when what has arrived is decoded). */
        snapshot: () => (countPending(), JSON.parse(JSON.stringify(stats))),
        close: () => new Promise((r) => (server.closeAllConnections(), server.close(() => r()))),
      });
    });
  });
}

function count(stats, contentType, body) {
  try {
    const { resourceSpans = [] } = readTraceRequest(contentType, body);
    for (const rs of resourceSpans) {
      const attr = (rs.resource?.attributes ?? []).find((a) => a.key === 'service.name');
      const service = attr?.value?.stringValue ?? 'unknown';
      const n = (rs.scopeSpans ?? []).reduce((sum, ss) => sum + (ss.spans?.length ?? 0), 0);
      stats.spans += n;
      stats.byService[service] = (stats.byService[service] ?? 0) + n;
    }
  } catch {
    stats.unparsed += 1;
  }
}

module.exports = { startOtlpSink };
