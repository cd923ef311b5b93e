// Where the http handler connects: a job's URL comes from an API caller, and the handler runs in
// the deployment's network and returns what it read. It calls public addresses, and loopback,
// private or link-local ones only when HTTP_HANDLER_ALLOWED_HOSTS names them: checked on the
// addresses it connects to, and again on every redirect.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { HttpDestinations, PermanentError, classifyError, createLogger, type ClassificationRule } from '@bullpen/core';
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
      else if (req.url?.startsWith('/status/')) res.writeHead(Number(req.url.slice('/status/'.length))).end('no');
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
    // The same loop answers the next attempt: retrying it only sends six more requests.
    expect(classifyError(loop)).toEqual({ errorClass: 'network', retryable: false });
  });

  describe("and a lane's errorRules", () => {
    const failure = (url: string): Promise<unknown> => call(['127.0.0.1'], url).then(() => undefined, (e: unknown) => e);

    it('match the status of an answer the handler failed on', async () => {
      const notFound = await failure(`http://127.0.0.1:${port}/status/404`);
      const broken = await failure(`http://127.0.0.1:${port}/status/500`);
      expect(classifyError(notFound)).toEqual({ errorClass: 'http_4xx', retryable: false });
      expect(classifyError(broken)).toEqual({ errorClass: 'http_5xx', retryable: true });
      const rules: ClassificationRule[] = [
        { status: 404, retryable: true, errorClass: 'http_4xx' },
        { status: 500, retryable: false },
      ];
      expect(classifyError(notFound, rules)).toEqual({ errorClass: 'http_4xx', retryable: true });
      expect(classifyError(broken, rules)).toEqual({ errorClass: 'handler', retryable: false });
    });

    it('match the code of a request that got no answer', async () => {
      const closed = http.createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const closedPort = (closed.address() as AddressInfo).port;
      await new Promise((resolve) => closed.close(resolve));
      const refused = await failure(`http://127.0.0.1:${closedPort}/x`);
      expect(classifyError(refused)).toEqual({ errorClass: 'network', retryable: true });
      expect(classifyError(refused, [{ code: 'ECONNREFUSED', retryable: false, errorClass: 'network' }])).toEqual({ errorClass: 'network', retryable: false });
    });
  });
});

describe('the http handler and a server certificate it refuses', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-http-tls-'));
  let server: https.Server;
  let port = 0;

  beforeAll(async () => {
    const run = spawnSync(
      'openssl',
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '2', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1'],
      { cwd: dir, encoding: 'utf8' },
    );
    if (run.error || run.status !== 0) throw new Error(`openssl is needed for this test (Debian: apt-get install -y openssl): ${run.error?.message ?? run.stderr}`);
    server = https.createServer({ key: readFileSync(path.join(dir, 'key.pem')), cert: readFileSync(path.join(dir, 'cert.pem')) }, (_req, res) => res.end('{}'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  it('fails permanently: a self-signed certificate is the same at the next attempt, unless errorRules say otherwise', async () => {
    const handler = createHttpHandler(new HttpDestinations(['127.0.0.1']));
    const ctx: HandlerContext = {
      jobId: 'j', jobName: 'http', lane: 'l', attempt: 1, maxAttempts: 1, tenant: 't',
      signal: new AbortController().signal, logger: createLogger('worker', 'error'), progress: async () => undefined,
    };
    const err = await Promise.resolve(handler.run(handler.parse({ url: `https://127.0.0.1:${port}/` }), ctx)).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/TLS certificate was refused \(DEPTH_ZERO_SELF_SIGNED_CERT\)/);
    expect(classifyError(err)).toEqual({ errorClass: 'network', retryable: false });
    expect(classifyError(err, [{ code: 'DEPTH_ZERO_SELF_SIGNED_CERT', retryable: true }])).toEqual({ errorClass: 'handler', retryable: true });
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
