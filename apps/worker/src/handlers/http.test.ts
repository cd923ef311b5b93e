// Where the http handler connects: a job's URL comes from an API caller, and the handler runs in
// the deployment's network and returns what it read. It calls public addresses, and loopback,
// private or link-local ones only when HTTP_HANDLER_ALLOWED_HOSTS names them: checked on the
// addresses it connects to, and again on every redirect.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import { HttpDestinations, PermanentError, createLogger } from '@bullpen/core';
import type { HandlerContext } from '../handler';
import { createHttpHandler, type HttpResult } from './http';

describe('the http handler’s destinations', () => {
  let server: http.Server;
  let port = 0;
  const hits: string[] = [];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      hits.push(req.url ?? '');
      if (req.url === '/to-metadata') res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
      else if (req.url === '/to-ok') res.writeHead(302, { location: '/ok' }).end();
      else if (req.url === '/loop') res.writeHead(302, { location: '/loop' }).end();
      else if (req.url === '/gzip' && /gzip/.test(String(req.headers['accept-encoding']))) {
        res.writeHead(200, { 'content-type': 'application/json', 'content-encoding': 'gzip' }).end(zlib.gzipSync(JSON.stringify({ packed: true })));
      }
      else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ path: req.url }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  beforeEach(() => hits.splice(0));

  const ctx = (): HandlerContext => ({
    jobId: 'j',
    jobName: 'http',
    lane: 'l',
    attempt: 1,
    maxAttempts: 1,
    tenant: 't',
    signal: new AbortController().signal,
    logger: createLogger('worker', 'error'),
    progress: async () => undefined,
  });

  function call(allowed: string[], url: string): Promise<HttpResult> {
    const handler = createHttpHandler(new HttpDestinations(allowed));
    return Promise.resolve(handler.run(handler.parse({ url }), ctx()));
  }

  async function refusal(allowed: string[], url: string): Promise<PermanentError> {
    const err = await call(allowed, url).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).errorClass).toBe('validation');
    return err as PermanentError;
  }

  it('refuses loopback, link-local and private addresses that are not allowed, without connecting', async () => {
    expect((await refusal([], `http://127.0.0.1:${port}/secret`)).message).toMatch(/127\.0\.0\.1 is not a public address/);
    expect((await refusal([], 'http://169.254.169.254/latest/meta-data/')).message).toMatch(/HTTP_HANDLER_ALLOWED_HOSTS/);
    await refusal([], 'http://10.1.2.3/');
    await refusal([], 'http://[::1]/');
    await refusal([], 'http://[::ffff:127.0.0.1]/');
    expect(hits).toEqual([]);
  });

  it('checks the addresses a host name resolves to, where it connects', async () => {
    expect((await refusal([], `http://localhost:${port}/secret`)).message).toMatch(/localhost is not a public address/);
    expect(hits).toEqual([]);
    // Named, it may resolve to anything.
    expect(await call(['localhost'], `http://localhost:${port}/named`)).toMatchObject({ status: 200, body: { path: '/named' } });
  });

  it('calls what HTTP_HANDLER_ALLOWED_HOSTS names, as an address or a network', async () => {
    expect(await call(['127.0.0.1'], `http://127.0.0.1:${port}/a`)).toMatchObject({ status: 200, body: { path: '/a' } });
    expect(await call(['127.0.0.0/8'], `http://127.0.0.1:${port}/b`)).toMatchObject({ status: 200, body: { path: '/b' } });
  });

  it('asks for compressed answers and decodes them, as fetch does', async () => {
    expect(await call(['127.0.0.1'], `http://127.0.0.1:${port}/gzip`)).toMatchObject({ status: 200, body: { packed: true } });
  });

  it('fails a header Node will not send permanently, as validation', async () => {
    const handler = createHttpHandler(new HttpDestinations(['127.0.0.1']));
    const err = await Promise.resolve(handler.run(handler.parse({ url: `http://127.0.0.1:${port}/h`, headers: { 'x-note': 'a\nb' } }), ctx())).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PermanentError);
    expect((err as PermanentError).errorClass).toBe('validation');
    expect(hits).toEqual([]);
  });

  it('follows redirects, checking each one: none to the metadata service, none forever', async () => {
    expect(await call(['127.0.0.1'], `http://127.0.0.1:${port}/to-ok`)).toMatchObject({ status: 200, body: { path: '/ok' } });
    expect((await refusal(['127.0.0.1'], `http://127.0.0.1:${port}/to-metadata`)).message).toMatch(/169\.254\.169\.254 is not a public address/);
    const loop = await call(['127.0.0.1'], `http://127.0.0.1:${port}/loop`).catch((e: unknown) => e as Error);
    expect((loop as Error).message).toMatch(/more than 5 redirects/);
  });
});

describe('HttpDestinations', () => {
  it('tells public addresses from the others, and takes names, domains, addresses and networks', () => {
    const none = new HttpDestinations();
    for (const address of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111']) expect(none.allowsAddress(address)).toBe(true);
    for (const address of ['127.0.0.1', '10.0.0.1', '172.16.5.4', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', 'fd00::1', 'fe80::1', '::ffff:10.0.0.1']) {
      expect({ address, allowed: none.allowsAddress(address) }).toEqual({ address, allowed: false });
    }
    const some = new HttpDestinations(['payments', '*.internal.example.com', '10.2.0.0/16', 'fd00::7']);
    expect(some.refusal('payments', ['10.9.9.9'])).toBeUndefined();
    expect(some.refusal('api.internal.example.com', ['192.168.0.1'])).toBeUndefined();
    expect(some.refusal('internal.example.com', ['192.168.0.1'])).toMatch(/not a public address \(192\.168\.0\.1\)/);
    expect(some.refusal('db', ['10.2.3.4'])).toBeUndefined();
    expect(some.refusal('db', ['10.2.3.4', '10.3.0.1'])).toMatch(/\(10\.3\.0\.1\)/);
    expect(some.refusal('fd00::7', ['fd00::7'])).toBeUndefined();
    expect(() => new HttpDestinations(['10.0.0.0/33'])).toThrow(/HTTP_HANDLER_ALLOWED_HOSTS: "10.0.0.0\/33": expected a prefix length from 0 to 32/);
    expect(() => new HttpDestinations(['bad host!'])).toThrow(/expected a host name/);
  });
});
