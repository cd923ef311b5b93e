import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express, { type ErrorRequestHandler, type RequestHandler } from 'express';
import { routeTable, type RouteTable } from './route-table';

/** Appends `name` to the response's trail and moves on. */
const step =
  (name: string): RequestHandler =>
  (_req, res, next) => {
    (res.locals.trail as string[]).push(name);
    next();
  };

let server: Server;
let base: string;
let v1: RouteTable;

beforeAll(async () => {
  const app = express();
  app.use((_req, res, next) => {
    res.locals.trail = [];
    next();
  });
  v1 = routeTable(app, '/v1', [step('shared')]);
  v1.get('/things/:id', step('first'), (req, res) => {
    res.json({ trail: res.locals.trail, id: req.params.id });
  });
  v1.post('/things/:id', (_req, res) => {
    res.status(201).json({ trail: res.locals.trail });
  });
  v1.get('/refused', step('first'), (_req, _res, next) => next(new Error('refused by a middleware')), step('never'));
  v1.get('/thrown', () => {
    throw new Error('thrown by a handler');
  });
  v1.get('/rejected', async () => {
    await Promise.resolve();
    throw new Error('rejected by an async handler');
  });
  v1.get('/through', step('first'));
  v1.get('/skip', step('first'), (_req, _res, next) => next('route'), step('never'));
  v1.otherMethods((allowed) => (req, res) => {
    res.status(405).json({ trail: res.locals.trail, method: req.method, allowed });
  });
  app.get('/v1/skip', (_req, res) => {
    res.json({ trail: res.locals.trail, by: 'the next route' });
  });
  app.use((_req, res) => {
    res.status(404).json({ trail: res.locals.trail, by: 'the fallback' });
  });
  const onError: ErrorRequestHandler = (err: Error, _req, res, _next) => {
    res.status(500).json({ trail: res.locals.trail, error: err.message });
  };
  app.use(onError);
  server = app.listen(0, '127.0.0.1');
  await new Promise<void>((resolve) => server.once('listening', () => resolve()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

async function get(path: string, method = 'GET'): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(base + path, { method });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

describe('routeTable', () => {
  it('runs the shared handlers, then the route\'s, under the prefix with the route\'s params', async () => {
    expect(await get('/v1/things/42')).toEqual({ status: 200, body: { trail: ['shared', 'first'], id: '42' } });
    expect((await get('/things/42')).body.by).toBe('the fallback');
  });

  it('hands an error passed to next() to the error handlers and runs nothing after it', async () => {
    expect(await get('/v1/refused')).toEqual({ status: 500, body: { trail: ['shared', 'first'], error: 'refused by a middleware' } });
  });

  it('hands a thrown error and a rejected promise to the error handlers', async () => {
    expect(await get('/v1/thrown')).toEqual({ status: 500, body: { trail: ['shared'], error: 'thrown by a handler' } });
    expect(await get('/v1/rejected')).toEqual({ status: 500, body: { trail: ['shared'], error: 'rejected by an async handler' } });
  });

  it('goes on to the app\'s next layer past its last handler, and to the next route on next("route")', async () => {
    expect(await get('/v1/through')).toEqual({ status: 404, body: { trail: ['shared', 'first'], by: 'the fallback' } });
    expect(await get('/v1/skip')).toEqual({ status: 200, body: { trail: ['shared', 'first'], by: 'the next route' } });
  });

  it('answers a method none of a path\'s routes handles after the shared handlers, given the methods the path handles', async () => {
    expect(await get('/v1/things/42', 'PUT')).toEqual({ status: 405, body: { trail: ['shared'], method: 'PUT', allowed: ['GET', 'HEAD', 'POST'] } });
    expect(await get('/v1/refused', 'DELETE')).toEqual({ status: 405, body: { trail: ['shared'], method: 'DELETE', allowed: ['GET', 'HEAD'] } });
    // The methods it handles still reach their routes.
    expect(await get('/v1/things/42', 'POST')).toEqual({ status: 201, body: { trail: ['shared'] } });
    expect((await fetch(`${base}/v1/things/42`, { method: 'HEAD' })).status).toBe(200);
  });

  it('takes no route after it answers other methods', () => {
    expect(() => v1.get('/late', step('late'))).toThrow(/GET \/v1\/late added after otherMethods/);
  });
});
