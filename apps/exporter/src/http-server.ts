// The exporter's HTTP face: `/metrics` for Prometheus and `/healthz` for liveness probes.
import http from 'node:http';
import type { Registry } from 'prom-client';

export interface Health {
  ok: boolean;
  [detail: string]: unknown;
}

/** `registry()` is asked at each scrape: it changes when a standby exporter takes the lead. */
export function createMetricsServer(registry: () => Registry, health: () => Health): http.Server {
  return http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    if (path === '/metrics') {
      const serving = registry();
      serving.metrics().then(
        (body) => res.writeHead(200, { 'content-type': serving.contentType }).end(body),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${String(err)}\n`),
      );
      return;
    }
    if (path === '/healthz') {
      const body = health();
      res.writeHead(body.ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
  });
}
