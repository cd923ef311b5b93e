// The API's HTTP server makes its requests and responses with the Express app's prototypes, so
// Express's per-request prototype switch has nothing to change, and Express works as before.
import http from 'node:http';
import express, { type Express } from 'express';
import { listen, type RunningServer } from './server';

function post(url: string, body: string): Promise<{ status: number; type: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('the API HTTP server', () => {
  let app: Express;
  let running: RunningServer;
  const arrived: Array<{ request: object | null; response: object | null }> = [];

  beforeAll(async () => {
    app = express();
    app.post('/things/:id', express.json(), (req, res) => {
      res.status(201).json({
        id: req.params.id,
        json: req.is('application/json'),
        sameApp: req.app === app,
        nodeTypes: req instanceof http.IncomingMessage && res instanceof http.ServerResponse,
        body: req.body as unknown,
      });
    });
    app.post('/fail', () => {
      throw new Error('boom');
    });
    app.use((err: Error, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      res.status(500).json({ error: err.message });
    });
    running = await listen(app, '127.0.0.1', 0);
    // Runs before Express sees the request: what Node made, not what Express turned it into.
    running.server.prependListener('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
      arrived.push({ request: Object.getPrototypeOf(req) as object | null, response: Object.getPrototypeOf(res) as object | null });
    });
  });

  afterAll(() => running.close());

  it("makes each request and response with the app's prototypes before Express sees them", async () => {
    const before = arrived.length;
    await post(`${running.url}/things/a`, '{}');
    expect(arrived.length).toBe(before + 1);
    const { request, response } = arrived[before] as { request: object; response: object };
    expect(request).toBe(app.request);
    expect(response).toBe(app.response);
    expect(request).not.toBe(http.IncomingMessage.prototype);
  });

  it("keeps Express's request and response methods, params, body parsing and error handling", async () => {
    const ok = await post(`${running.url}/things/42`, '{"x":[1,2]}');
    expect(ok.status).toBe(201);
    expect(ok.type).toMatch(/^application\/json/);
    expect(JSON.parse(ok.body)).toEqual({ id: '42', json: 'application/json', sameApp: true, nodeTypes: true, body: { x: [1, 2] } });
    const failed = await post(`${running.url}/fail`, '{}');
    expect(failed.status).toBe(500);
    expect(JSON.parse(failed.body)).toEqual({ error: 'boom' });
  });
});

describe('idle client connections', () => {
  it('stay open past a load balancer\'s 60 s idle timeout by default, and as long as configured', async () => {
    const app = express();
    const byDefault = await listen(app, '127.0.0.1', 0);
    const configured = await listen(app, '127.0.0.1', 0, { keepAliveTimeoutMs: 1500 });
    try {
      expect(byDefault.server.keepAliveTimeout).toBe(65_000);
      expect(configured.server.keepAliveTimeout).toBe(1500);
    } finally {
      await byDefault.close();
      await configured.close();
    }
  });
});

describe('closing', () => {
  it('answers the requests under way with Connection: close, so that a client opens a new connection for its next one', async () => {
    const app = express();
    let arrived: () => void = () => undefined;
    const inFlight = new Promise<void>((resolve) => (arrived = resolve));
    let finish: () => void = () => undefined;
    app.get('/slow', (_req, res) => {
      arrived();
      finish = () => res.status(200).json({ ok: true });
    });
    const running = await listen(app, '127.0.0.1', 0);
    const agent = new http.Agent({ keepAlive: true });
    try {
      const answer = new Promise<{ connection: string | undefined; socketClosed: Promise<void> }>((resolve, reject) => {
        const req = http.get(`${running.url}/slow`, { agent }, (res) => {
          res.resume();
          const socketClosed = new Promise<void>((done) => req.socket?.once('close', () => done()));
          res.on('end', () => resolve({ connection: res.headers.connection, socketClosed }));
        });
        req.on('error', reject);
      });
      await inFlight;
      const closed = running.close(60_000);
      finish();
      const { connection, socketClosed } = await answer;
      expect(connection).toBe('close');
      await socketClosed;
      // Nothing is left open: close() is done long before its grace.
      await closed;
    } finally {
      agent.destroy();
    }
  });
});
