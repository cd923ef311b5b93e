// Rotating the keys of API_KEYS_FILE without a restart: on SIGHUP the API re-reads the file and
// swaps its keys (a request already authenticated finishes), keeps them when the new file is bad,
// and the exporter counts the new tenants under their own label, keeping them on a file the API refuses.
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodeLaneEvent, LANE_EVENT, laneEventsKey } from '@bullpen/core';
import IORedis from 'ioredis';
import { cleanupPrefix } from './support/config';
import { spawnApi, spawnExporter, total, type AppProcess } from './support/prometheus';
import { redisUrl, testPrefix, waitUntil } from './support/wait';

const LANE = 'tool_call';
const OLD_KEY = 'acme-key-old-0001';
const NEW_KEY = 'acme-key-new-0001';
const BETA_KEY = 'beta-key-0000001';

describe('rotating API_KEYS_FILE without a restart', () => {
  let dir: string;
  let keysFile: string;
  let prefix: string;
  const apps: AppProcess[] = [];

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-keys-'));
    keysFile = path.join(dir, 'keys.txt');
    prefix = testPrefix('keys');
  });

  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.kill('SIGKILL')));
    rmSync(dir, { recursive: true, force: true });
    await cleanupPrefix(prefix);
  });

  const start = async (env: Record<string, string> = {}) => {
    const api = await spawnApi({ REDIS_URL: redisUrl(), BULLPEN_PREFIX: prefix, API_KEYS_FILE: keysFile, ...env });
    apps.push(api);
    return api;
  };
  const submit = async (api: AppProcess, key: string) =>
    (
      await fetch(`${api.url}/v1/lanes/${LANE}/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'noop' }),
      })
    ).status;
  const logged = (app: AppProcess, msg: string, count = 1) =>
    waitUntil(
      () => {
        if (app.exitCode() !== null) throw new Error(`the app exited with ${app.exitCode()}: ${app.output().slice(-2000)}`);
        const lines = app.logs().filter((line) => line.msg === msg);
        return lines.length >= count ? lines[count - 1] : undefined;
      },
      { what: `log line ${JSON.stringify(msg)} #${count}` },
    );
  const hangUp = (app: AppProcess) => process.kill(app.pid, 'SIGHUP');

  /** A job submission whose headers the API has read (100-continue) and whose body is not sent yet. */
  async function submissionUnderWay(api: AppProcess, key: string) {
    const body = JSON.stringify({ name: 'noop' });
    const req = http.request(`${api.url}/v1/lanes/${LANE}/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), expect: '100-continue' },
    });
    const status = new Promise<number>((resolve, reject) => {
      req.once('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.once('error', reject);
    });
    // Node answers 100 Continue just before it hands the request to the app, which authenticates
    // it before reading the body.
    const continued = new Promise<void>((resolve) => req.once('continue', () => resolve()));
    req.flushHeaders();
    await continued;
    return { finish: () => (req.end(body), status) };
  }

  it('puts the new keys in force on SIGHUP: a revoked key gets 401, an added one 201, and a request under way completes', async () => {
    writeFileSync(keysFile, `acme:${OLD_KEY}\n`);
    const api = await start();
    expect(await submit(api, OLD_KEY)).toBe(201);
    expect(await submit(api, NEW_KEY)).toBe(401);
    const underWay = await submissionUnderWay(api, OLD_KEY);

    writeFileSync(keysFile, `# acme:${OLD_KEY} revoked\nacme:${NEW_KEY}\nbeta:${BETA_KEY}:critic\n`);
    hangUp(api);
    const reloaded = await logged(api, 'api keys reloaded');
    expect(reloaded).toMatchObject({ level: 'info', file: keysFile, keys: 2, tenants: 2 });

    expect(await submit(api, OLD_KEY)).toBe(401);
    expect(await submit(api, NEW_KEY)).toBe(201);
    // The added key's lane binding holds.
    expect(await submit(api, BETA_KEY)).toBe(403);
    expect(await underWay.finish()).toBe(201);
    for (const key of [OLD_KEY, NEW_KEY, BETA_KEY]) expect(api.output()).not.toContain(key);
    expect(api.exitCode()).toBeNull();
  });

  it('keeps the keys in force when the file is bad on SIGHUP, logging an error that names the file and the problem', async () => {
    writeFileSync(keysFile, `acme:${OLD_KEY}\n`);
    const api = await start({ API_OPERATOR_TENANTS: 'acme' });

    writeFileSync(keysFile, `acme:${NEW_KEY}\nbeta:short\n`);
    hangUp(api);
    const refused = await logged(api, 'api keys not reloaded: keeping the keys in force');
    expect(refused).toMatchObject({ level: 'error', file: keysFile, error: expect.stringMatching(/line 2: field "key": expected at least 8 characters/) });
    expect(refused.error).toContain(keysFile);
    expect(await submit(api, OLD_KEY)).toBe(201);
    expect(await submit(api, NEW_KEY)).toBe(401);

    // A file emptied by mistake would lock every caller out.
    writeFileSync(keysFile, '# nothing yet\n');
    hangUp(api);
    expect((await logged(api, 'api keys not reloaded: keeping the keys in force', 2)).error).toMatch(/expected at least one tenant:key entry/);
    // The operator tenant must keep a key.
    writeFileSync(keysFile, `beta:${BETA_KEY}\n`);
    hangUp(api);
    expect((await logged(api, 'api keys not reloaded: keeping the keys in force', 3)).error).toMatch(/API_OPERATOR_TENANTS: .*got "acme"/);
    rmSync(keysFile);
    hangUp(api);
    expect((await logged(api, 'api keys not reloaded: keeping the keys in force', 4)).error).toMatch(/expected a readable file/);
    expect(await submit(api, OLD_KEY)).toBe(201);

    writeFileSync(keysFile, `acme:${NEW_KEY}\n`);
    hangUp(api);
    await logged(api, 'api keys reloaded');
    expect(await submit(api, NEW_KEY)).toBe(201);
    expect(await submit(api, OLD_KEY)).toBe(401);
    for (const key of [OLD_KEY, NEW_KEY, BETA_KEY]) expect(api.output()).not.toContain(key);
  });

  it('says there is nothing to reload when the keys come from API_KEYS, and goes on serving', async () => {
    const api = await start({ API_KEYS_FILE: '', API_KEYS: `acme:${OLD_KEY}` });
    hangUp(api);
    await logged(api, 'SIGHUP: nothing to reload: API_KEYS_FILE is not set, and keys in API_KEYS are read again only by a restart');
    expect(await submit(api, OLD_KEY)).toBe(201);
    expect(api.exitCode()).toBeNull();
  });

  it("counts a new tenant's attempts under its own label in the exporter after SIGHUP, and keeps the labels on an emptied file", async () => {
    writeFileSync(keysFile, `acme:${OLD_KEY}\n`);
    const exporter = await spawnExporter({ REDIS_URL: redisUrl(), BULLPEN_PREFIX: prefix, API_KEYS_FILE: keysFile });
    apps.push(exporter);
    const redis = new IORedis(redisUrl(), { maxRetriesPerRequest: 3 });
    try {
      const attempt = async (jobId: string) =>
        redis.xadd(
          laneEventsKey(prefix, LANE),
          '*',
          ...encodeLaneEvent({ event: LANE_EVENT.attempt, jobId, name: 'noop', tenant: 'beta', attempt: 1, outcome: 'completed', willRetry: false, runMs: 5, waitMs: 5, worker: 'w1' }),
        );
      const attempts = async (tenant: string) => total(await exporter.samples(), 'bullpen_job_attempts_total', { lane: LANE, tenant });
      await attempt('j1');
      await waitUntil(async () => (await attempts('other')) === 1, { what: "beta's first attempt counted as other" });

      writeFileSync(keysFile, `acme:${OLD_KEY}\nbeta:${BETA_KEY}\n`);
      hangUp(exporter);
      expect(await logged(exporter, 'api keys reloaded')).toMatchObject({ keys: 2, tenantLabels: ['acme', 'beta'] });
      await attempt('j2');
      await waitUntil(async () => (await attempts('beta')) === 1, { what: "beta's second attempt counted as beta" });
      expect(await attempts('other')).toBe(1);

      // A file emptied by mistake, which the API refuses, leaves the exporter's tenants as they were.
      writeFileSync(keysFile, '# nothing yet\n');
      hangUp(exporter);
      expect(await logged(exporter, 'api keys not reloaded: keeping the keys in force')).toMatchObject({
        level: 'error',
        file: keysFile,
        error: expect.stringMatching(/expected at least one tenant:key entry/),
      });
      await attempt('j3');
      await waitUntil(async () => (await attempts('beta')) === 2, { what: "beta's third attempt counted as beta" });
      expect(await attempts('other')).toBe(1);
      expect(exporter.logs().filter((line) => line.msg === 'api keys reloaded')).toHaveLength(1);
      expect(exporter.exitCode()).toBeNull();
    } finally {
      redis.disconnect();
    }
  });
});
