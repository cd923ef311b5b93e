// A local HTTP server for a job's outbound calls: it answers 503 to its first `failures` requests
// and 200 with {"ok":true} to the rest, and keeps the headers of every request.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FlakyServer {
  /** http://127.0.0.1:<port>, without a path. */
  url: string;
  /** The headers of each request received, in order. */
  requests: http.IncomingHttpHeaders[];
  close(): Promise<void>;
}

export async function startFlakyServer(failures: number): Promise<FlakyServer> {
  const requests: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.headers);
    if (requests.length <= failures) res.writeHead(503, { 'content-type': 'text/plain' }).end('busy');
    else res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
