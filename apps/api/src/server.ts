// Serves an Express app on a host and port (0 = any free port) and stops it again.
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Express } from 'express';
import { DEFAULT_API_KEEPALIVE_TIMEOUT_MS } from '@bullpen/core';

/**
 * An HTTP server for `app` whose requests and responses are made with the app's own prototypes.
 *
 * Express gives each request and response its methods by switching their prototypes to
 * `app.request` and `app.response` as they arrive (`Object.setPrototypeOf` in `app.handle`). On
 * Node 20 that switch costs far more than the call: the process then allocates in old space on
 * every request and Node's own HTTP code slows down throughout. Measured on a 2-core VM at 50
 * requests in flight, a bare Express 5 JSON endpoint took 0.078-0.080 ms of CPU a request against
 * 0.020-0.022 ms when made this way; on Node 24 both take about 0.021 ms. Here Node constructs
 * them from classes whose prototypes are the app's, so the switch finds nothing to change:
 * `app.request` and `app.response` become those classes' prototypes, which inherit from the
 * originals (so sub-apps mounted earlier, whose prototypes inherit from the originals, still work).
 */
export function createHttpServer(app: Express): http.Server {
  class ApiRequest extends http.IncomingMessage {}
  class ApiResponse<Request extends http.IncomingMessage = http.IncomingMessage> extends http.ServerResponse<Request> {}
  // Each keeps everything Express's prototype has (`req.app`, `res.json`, ...) by inheriting it.
  Object.setPrototypeOf(ApiRequest.prototype, app.request);
  Object.setPrototypeOf(ApiResponse.prototype, app.response);
  app.request = ApiRequest.prototype as Express['request'];
  app.response = ApiResponse.prototype as Express['response'];
  return http.createServer({ IncomingMessage: ApiRequest, ServerResponse: ApiResponse }, app);
}

export interface RunningServer {
  server: http.Server;
  /** e.g. http://127.0.0.1:3000 */
  url: string;
  /**
   * Stops accepting; in-flight requests get `graceMs` to finish before connections are cut. Their
   * answers close their connections, so that a client's next request goes to a new connection
   * (another replica, or this API once restarted) instead of one that only closes at the grace's end.
   */
  close(graceMs?: number): Promise<void>;
}

export interface ListenOptions {
  /**
   * How long an idle client connection stays open (API_KEEPALIVE_TIMEOUT_MS). A load balancer
   * reuses its idle connections to the API for up to its own idle timeout (60 s for AWS ALB and
   * nginx); were the API to close one first (Node's default is 5 s), a request the balancer sent
   * on it as it closed would fail, and the client would get a 502 for a request the API never saw.
   */
  keepAliveTimeoutMs?: number;
}

export async function listen(
  app: Express,
  host: string,
  port: number,
  { keepAliveTimeoutMs = DEFAULT_API_KEEPALIVE_TIMEOUT_MS }: ListenOptions = {},
): Promise<RunningServer> {
  const server = createHttpServer(app);
  server.keepAliveTimeout = keepAliveTimeoutMs;
  // Node's close() ends only the connections idle at that moment: one whose answer was still under
  // way stayed open, and the client sent its next request on it to a stopping API (a redrive sent
  // again after api_stopping was answered api_stopping until the grace was over). So the answers
  // under way, and any that come after, say Connection: close.
  const open = new Set<http.ServerResponse>();
  let closing = false;
  server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    if (closing) {
      if (!res.headersSent) res.setHeader('Connection', 'close');
      return;
    }
    open.add(res);
    res.once('close', () => open.delete(res));
  });
  server.listen(port, host);
  await once(server, 'listening');
  const { port: bound } = server.address() as AddressInfo;
  const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return {
    server,
    url: `http://${shownHost.includes(':') ? `[${shownHost}]` : shownHost}:${bound}`,
    async close(graceMs = 5000) {
      closing = true;
      for (const res of open) if (!res.headersSent) res.setHeader('Connection', 'close');
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      const timer = setTimeout(() => server.closeAllConnections(), graceMs);
      try {
        await closed;
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
