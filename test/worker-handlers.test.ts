// Each built-in handler run by a real worker against real Redis; `http` against a local server.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createLaneQueue, createRedis, loadConfig, wrapJobData } from '@bullpen/core';
import { cleanupPrefix, standaloneUrl } from './support/config';
import { freePort } from './support/redis-server';
import { redisUrl, testPrefix, waitUntil } from './support/wait';
import { startWorkerHarness, type WorkerHarness } from './fixtures/worker-harness';
import { spawnWorker, writeLanesFile } from './fixtures/worker-process';

const lanesFile = {
  maxHandlersPerProcess: 8,
  lanes: {
    // One attempt: a failure is final at once, so its class and reason can be checked directly.
    once: { concurrency: 4, attempts: 1 },
    twice: { concurrency: 4, attempts: 2, backoff: { strategy: 'fixed', baseMs: 50, capMs: 5000 } },
    thrice: { concurrency: 2, attempts: 3, backoff: { strategy: 'fixed', baseMs: 20, capMs: 1000 } },
  },
};

describe('built-in handlers', () => {
  let harness: WorkerHarness;
  beforeAll(async () => {
    // The http handler's test server listens on loopback, which it calls only when allowed.
    harness = await startWorkerHarness({ lanesFile, env: { HTTP_HANDLER_ALLOWED_HOSTS: '127.0.0.1' } });
  });
  afterAll(async () => {
    await harness.close();
  });

  async function finished(lane: string, id: string) {
    await harness.waitForEvent('job:completed', (e) => e.jobId === id && e.lane === lane).catch(async (err) => {
      const dead = harness.events['job:dead'].find((e) => e.jobId === id && e.lane === lane);
      throw dead ? new Error(`job ${id} failed: ${dead.reason}`) : err;
    });
    const job = await harness.queue(lane).getJob(id);
    return job!;
  }

  async function dead(lane: string, id: string) {
    const event = await harness.waitForEvent('job:dead', (e) => e.jobId === id && e.lane === lane);
    const job = await harness.queue(lane).getJob(id);
    return { event, job: job!, rows: await harness.attemptRows(lane, id) };
  }

  it('completes noop, sleep and cpu jobs with their return values', async () => {
    const noop = await harness.add('once', 'noop', {});
    const sleep = await harness.add('once', 'sleep', { ms: 30 });
    const cpu = await harness.add('once', 'cpu', { ms: 30 });
    expect((await finished('once', noop)).returnvalue).toEqual({ ok: true });
    expect((await finished('once', sleep)).returnvalue).toEqual({ sleptMs: 30 });
    const cpuJob = await finished('once', cpu);
    expect(cpuJob.returnvalue).toMatchObject({ busyMs: 30 });
    expect((cpuJob.returnvalue as { iterations: number }).iterations).toBeGreaterThan(0);
    expect(await harness.queue('once').getJobState(cpu)).toBe('completed');
  });

  it.each([
    ['permanent', 'handler', false],
    ['retryable', 'handler', true],
    ['timeout', 'timeout', true],
    ['rate_limited', 'rate_limited', true],
  ])('fails a fail job of kind %s with error class %s', async (kind, errorClass, retryable) => {
    const id = await harness.add('once', 'fail', { kind, message: `boom ${kind}` });
    const { job, rows } = await dead('once', id);
    expect(job.failedReason).toBe(`boom ${kind}`);
    expect(job.attemptsMade).toBe(1);
    expect(rows).toEqual([expect.objectContaining({ type: 'attempt', attempt: 1, errorClass, message: `boom ${kind}`, delayMs: null })]);
    const failed = harness.events['job:failed'].find((e) => e.jobId === id && e.lane === 'once');
    expect(failed).toMatchObject({ errorClass, retryable, willRetry: false });
  });

  it('succeeds a fail job from attempt succeedOnAttempt on', async () => {
    const id = await harness.add('thrice', 'fail', { kind: 'retryable', succeedOnAttempt: 3 });
    const job = await finished('thrice', id);
    expect(job.returnvalue).toEqual({ succeededOnAttempt: 3 });
    expect((await harness.attemptRows('thrice', id)).map((r) => r.attempt)).toEqual([1, 2]);
  });

  it('fails a built-in job with a bad payload permanently, naming the field, without retries', async () => {
    const id = await harness.add('thrice', 'sleep', { ms: 'soon' });
    const { job, rows } = await dead('thrice', id);
    expect(job.failedReason).toMatch(/^invalid payload for job "sleep": field "ms": .*expected number, received string/);
    expect(job.attemptsMade).toBe(1);
    expect(rows).toEqual([expect.objectContaining({ errorClass: 'validation', delayMs: null })]);
  });

  describe('http', () => {
    let server: http.Server;
    let base: string;
    beforeAll(async () => {
      server = http.createServer((req, res) => {
        const url = new URL(req.url ?? '/', 'http://x');
        const status = Number(url.searchParams.get('status') ?? 200);
        if (url.pathname === '/hang') return; // never answers
        if (url.pathname === '/echo') {
          let body = '';
          req.on('data', (chunk) => (body += chunk));
          req.on('end', () => {
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ method: req.method, contentType: req.headers['content-type'], token: req.headers['x-token'], body }));
          });
          return;
        }
        const headers: http.OutgoingHttpHeaders = { 'content-type': 'text/plain' };
        const retryAfter = url.searchParams.get('retryAfter');
        if (retryAfter) headers['retry-after'] = retryAfter;
        res.writeHead(status, headers);
        res.end(`status ${status}`);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    });

    it('returns the status and the parsed JSON body, sending a JSON body with its headers', async () => {
      const id = await harness.add('once', 'http', {
        url: `${base}/echo`,
        method: 'POST',
        headers: { 'x-token': 't1' },
        body: { a: 1 },
      });
      const job = await finished('once', id);
      expect(job.returnvalue).toEqual({
        status: 200,
        body: { method: 'POST', contentType: 'application/json', token: 't1', body: '{"a":1}' },
        truncated: false,
      });
    });

    it('returns a text body as text', async () => {
      const id = await harness.add('once', 'http', { url: `${base}/plain?status=201` });
      expect((await finished('once', id)).returnvalue).toEqual({ status: 201, body: 'status 201', truncated: false });
    });

    it('fails a 404 permanently with error class http_4xx', async () => {
      const id = await harness.add('twice', 'http', { url: `${base}/missing?status=404` });
      const { job, rows } = await dead('twice', id);
      expect(job.attemptsMade).toBe(1);
      expect(job.failedReason).toMatch(/HTTP 404/);
      expect(rows).toEqual([expect.objectContaining({ errorClass: 'http_4xx', delayMs: null })]);
    });

    it('retries a 500 as http_5xx', async () => {
      const id = await harness.add('twice', 'http', { url: `${base}/broken?status=500` });
      const { job, rows } = await dead('twice', id);
      expect(job.attemptsMade).toBe(2);
      expect(rows).toEqual([
        expect.objectContaining({ attempt: 1, errorClass: 'http_5xx', delayMs: 50 }),
        expect.objectContaining({ attempt: 2, errorClass: 'http_5xx', delayMs: null }),
      ]);
    });

    it('retries a 408 as a timeout', async () => {
      const id = await harness.add('once', 'http', { url: `${base}/slow?status=408` });
      const { rows } = await dead('once', id);
      expect(rows).toEqual([expect.objectContaining({ errorClass: 'timeout' })]);
      expect(harness.events['job:failed'].find((e) => e.jobId === id && e.lane === 'once')?.retryable).toBe(true);
    });

    it.each([
      ['429', 429],
      ['503', 503],
    ])('delays the retry of a %s by its Retry-After', async (_label, status) => {
      const id = await harness.add('twice', 'http', { url: `${base}/limited?status=${status}&retryAfter=2` });
      const retrying = await harness.waitForEvent('job:retrying', (e) => e.jobId === id && e.lane === 'twice');
      expect(retrying).toMatchObject({ errorClass: 'rate_limited', delayMs: 2000 });
      const job = await harness.queue('twice').getJob(id);
      expect(await job!.getState()).toBe('delayed');
      expect(job!.delay).toBe(2000);
      await job!.remove();
    });

    it('treats a 503 without Retry-After as an ordinary retryable http_5xx', async () => {
      const id = await harness.add('once', 'http', { url: `${base}/down?status=503` });
      const { rows } = await dead('once', id);
      expect(rows).toEqual([expect.objectContaining({ errorClass: 'http_5xx' })]);
    });

    it('fails a refused connection as a retryable network error', async () => {
      const closedPort = await freePort();
      const id = await harness.add('once', 'http', { url: `http://127.0.0.1:${closedPort}/` });
      const { job, rows } = await dead('once', id);
      expect(job.failedReason).toMatch(/ECONNREFUSED/);
      expect(rows).toEqual([expect.objectContaining({ errorClass: 'network' })]);
      expect(harness.events['job:failed'].find((e) => e.jobId === id && e.lane === 'once')?.retryable).toBe(true);
    });

    it('gives up on a server that does not answer within connectTimeoutMs', async () => {
      const started = Date.now();
      const id = await harness.add('once', 'http', { url: `${base}/hang`, connectTimeoutMs: 200 });
      const { job, rows } = await dead('once', id);
      expect(Date.now() - started).toBeLessThan(5000);
      expect(job.failedReason).toMatch(/no response within connectTimeoutMs \(200 ms\)/);
      expect(rows).toEqual([expect.objectContaining({ errorClass: 'network' })]);
    });

    it('fails a request that runs past timeoutMs as a timeout', async () => {
      const id = await harness.add('once', 'http', { url: `${base}/hang`, timeoutMs: 200 });
      const { job, rows } = await dead('once', id);
      expect(job.failedReason).toMatch(/not finished within timeoutMs \(200 ms\)/);
      expect(rows).toEqual([expect.objectContaining({ errorClass: 'timeout' })]);
    });
  });
});

describe('handlers in a folder outside the bullpen tree', () => {
  const cleanups: Array<() => unknown> = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /** A folder of handler files outside the bullpen tree, as mounted at /handlers in a container (no
   * node_modules on the way up from it), a worker process loading it, and a producer per lane. */
  async function ownHandlersWorker(files: Record<string, string>, lanesFile: { lanes: Record<string, unknown> }) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-own-handlers-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    for (const [name, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
      writeFileSync(path.join(dir, name), text);
    }
    const lanes = writeLanesFile(lanesFile);
    cleanups.push(lanes.cleanup);
    const env = { REDIS_URL: redisUrl(), BULLPEN_PREFIX: testPrefix('oh'), LANES_FILE: lanes.file };
    const config = loadConfig(env);
    const redis = createRedis(standaloneUrl(config), 'worker', 'bullpen:test');
    const queues = new Map(Object.keys(lanesFile.lanes).map((lane) => [lane, createLaneQueue(config, lane, redis)]));
    cleanups.push(async () => {
      for (const queue of queues.values()) await queue.close();
      await redis.quit();
      await cleanupPrefix(config.prefix);
    });

    const worker = spawnWorker({ ...env, HANDLERS_DIR: dir });
    cleanups.push(() => worker.stop('SIGKILL'));
    // A worker that cannot load the folder exits at once: say why rather than wait.
    await Promise.race([
      worker.started(),
      worker.exited.then((code) => {
        throw new Error(`worker exited with ${code}: ${worker.stderr()}`);
      }),
    ]);
    return { worker, queue: (lane: string) => queues.get(lane)! };
  }

  it("load in a worker process when they require bullpen's own packages, as the README's example does", async () => {
    const { queue } = await ownHandlersWorker(
      {
        'lib/shout.js': "const { z } = require('zod');\nmodule.exports = (text) => z.string().parse(text).toUpperCase();\n",
        'shout.js': [
          "const { defineHandler } = require('@bullpen/worker');",
          "const { z } = require('zod');",
          "const shout = require('./lib/shout');",
          "module.exports = defineHandler({ name: 'shout', payload: z.object({ text: z.string() }), run: (data) => ({ shouted: shout(data.text) }) });",
        ].join('\n'),
      },
      { lanes: { own: { concurrency: 1, attempts: 1 } } },
    );
    const job = await queue('own').add('shout', wrapJobData({ text: 'hello' }, { v: 1, tenant: 't' }));
    await waitUntil(async () => (await queue('own').getJobState(job.id as string)) === 'completed', { what: 'the shout job to complete' });
    expect((await queue('own').getJob(job.id as string))?.returnvalue).toEqual({ shouted: 'HELLO' });
  });

  it("fail as the error classes they import from '@bullpen/worker' say: a PermanentError once, a RateLimitedError after its retryAfterMs", async () => {
    const { queue } = await ownHandlersWorker(
      {
        'refuse.js': [
          "const { defineHandler, PermanentError, RateLimitedError } = require('@bullpen/worker');",
          "exports.refuse = defineHandler({ name: 'refuse', run: () => { throw new PermanentError('no such account', 'validation'); } });",
          "exports.limited = defineHandler({ name: 'limited', run: () => { throw new RateLimitedError('slow down', 4000); } });",
        ].join('\n'),
      },
      { lanes: { own: { concurrency: 2, attempts: 3, backoff: { strategy: 'fixed', baseMs: 10, capMs: 30_000 } } } },
    );
    const lane = queue('own');
    const refused = (await lane.add('refuse', wrapJobData({}, { v: 1, tenant: 't' }))).id!;
    const limited = (await lane.add('limited', wrapJobData({}, { v: 1, tenant: 't' }))).id!;

    await waitUntil(async () => (await lane.getJobState(refused)) === 'failed', { what: 'the refuse job to fail' });
    const refusedJob = (await lane.getJob(refused))!;
    expect(refusedJob.attemptsMade).toBe(1);
    expect(refusedJob.failedReason).toBe('no such account');
    const attemptRows = async (id: string) => (await lane.getJobLogs(id)).logs.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(await attemptRows(refused)).toEqual([expect.objectContaining({ attempt: 1, errorClass: 'validation', delayMs: null })]);

    // Retried, but not before the dependency's 4 s: the lane's own 10 ms backoff would be far shorter.
    await waitUntil(async () => (await lane.getJobState(limited)) === 'delayed', { what: 'the limited job to wait for its retry' });
    expect((await lane.getJob(limited))!.delay).toBe(4000);
    expect(await attemptRows(limited)).toEqual([expect.objectContaining({ attempt: 1, errorClass: 'rate_limited', delayMs: 4000 })]);
  });
});
