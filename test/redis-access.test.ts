// A Redis that refuses bullpen's access: credentials it does not take (a typo, a password rotated
// on the server first) or an ACL user short of a permission. Neither passes by retrying, and
// neither is an outage, so every app must say what Redis refused and what to do — in its JSON
// log, in the API's 503s and readiness — and take up its work by itself once access is granted.
// And the ACL rules bullpen recommends (requiredAclRules) must be enough for everything it does.
import { spawnSync } from 'node:child_process';
import IORedis from 'ioredis';
import { requiredAclRules } from '@bullpen/core';
import { writeLanesFile } from './fixtures/worker-process';
import { WORKER_MAIN, spawnApi, spawnExporter, spawnWorkerApp, type AppProcess, type LogCondition } from './support/prometheus';
import { freePort, removeDir, startRedis, type RedisProcess } from './support/redis-server';
import { testPrefix, waitUntil } from './support/wait';

const KEY = 'access-key';
const authorization = `Bearer ${KEY}`;

const refusedAccess: LogCondition = (logs) => logs.some((l) => l.msg === 'redis refused access');
const unreachable: LogCondition = (logs) => logs.some((l) => l.msg === 'cannot reach redis');
const refusals = (app: AppProcess) => app.logs().filter((l) => l.msg === 'redis refused access');

describe('bullpen against a Redis that refuses its access', () => {
  const lanesFile = writeLanesFile({
    lanes: { work: { concurrency: 4, attempts: 2, backoff: { strategy: 'fixed', baseMs: 50, capMs: 50, jitter: 0 } } },
  });
  let redis: RedisProcess;
  let admin: IORedis;
  const apps: AppProcess[] = [];

  beforeAll(async () => {
    redis = await startRedis();
    admin = new IORedis(redis.url);
  });

  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.kill('SIGKILL')));
  });

  afterAll(async () => {
    admin?.disconnect();
    await redis?.stop();
    if (redis) removeDir(redis.dir);
    lanesFile.cleanup();
  });

  /** Creates (or redefines) an ACL user with the rules bullpen recommends for `prefix`, plus `extra`. */
  async function aclUser(name: string, password: string, prefix: string, extra: string[] = []): Promise<void> {
    await admin.call('ACL', 'SETUSER', name, 'reset', 'on', `>${password}`, ...requiredAclRules(prefix).split(' '), ...extra);
  }

  function env(user: string, password: string, prefix: string): Record<string, string> {
    return {
      REDIS_URL: `redis://${user}:${password}@127.0.0.1:${redis.port}`,
      BULLPEN_PREFIX: prefix,
      LANES_FILE: lanesFile.file,
      API_KEYS: `acme:${KEY}`,
      EXPORTER_LEADER_LEASE_MS: '1000',
    };
  }

  async function call(api: AppProcess, method: string, path: string, body?: unknown) {
    const res = await fetch(`${api.url}${path}`, {
      method,
      headers: { authorization, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
  }

  const jobState = async (api: AppProcess, id: string) => (await call(api, 'GET', `/v1/lanes/work/jobs/${id}`)).body.state;

  async function sample(exporter: AppProcess, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
    const samples = await exporter.samples();
    return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
  }

  it('runs everything bullpen does with only the ACL rules it recommends', async () => {
    const prefix = testPrefix('acl');
    await aclUser('bullpen', 'least-pw', prefix);
    const base = env('bullpen', 'least-pw', prefix);
    const [api, worker, exporter] = await Promise.all([spawnApi(base), spawnWorkerApp(base), spawnExporter(base)]);
    apps.push(api, worker, exporter);

    // Submission with an idempotency key, and its replay.
    const first = await call(api, 'POST', '/v1/lanes/work/jobs', { name: 'noop', idempotencyKey: 'once' });
    expect(first.status).toBe(201);
    const replay = await call(api, 'POST', '/v1/lanes/work/jobs', { name: 'noop', idempotencyKey: 'once' });
    expect(replay.status).toBe(200);
    expect(replay.body.id).toBe(first.body.id);
    await waitUntil(async () => (await jobState(api, first.body.id as string)) === 'completed', { what: 'the job to complete' });

    // A job that fails both attempts ends as a dead letter (retries, the retry budget, dead letters).
    const failing = await call(api, 'POST', '/v1/lanes/work/jobs', { name: 'fail', data: { kind: 'retryable' } });
    expect(failing.status).toBe(201);
    await waitUntil(async () => (await jobState(api, failing.body.id as string)) === 'failed', { what: 'the job to fail for good' });
    const dead = await call(api, 'GET', '/v1/lanes/work/dead');
    expect(dead.status).toBe(200);
    expect((dead.body.items as Array<{ id: string }>).map((d) => d.id)).toContain(failing.body.id);

    // Cancelling a running job reaches its worker over the cancel channel.
    const sleeping = await call(api, 'POST', '/v1/lanes/work/jobs', { name: 'sleep', data: { ms: 60_000 } });
    await waitUntil(async () => (await jobState(api, sleeping.body.id as string)) === 'active', { what: 'the job to start' });
    expect((await call(api, 'DELETE', `/v1/lanes/work/jobs/${sleeping.body.id as string}`)).status).toBe(202);
    await waitUntil(async () => (await jobState(api, sleeping.body.id as string)) === 'failed', { what: 'the cancelled job to end' });

    // Live counts, and the exporter's view: the queues, Redis's memory, the workers, the totals.
    expect((await call(api, 'GET', '/v1/lanes')).status).toBe(200);
    await waitUntil(async () => (await sample(exporter, 'bullpen_jobs_completed_total', { lane: 'work' })) === 1, {
      what: 'the exporter to count the completed job',
    });
    expect(await sample(exporter, 'bullpen_exporter_redis_up')).toBe(1);
    expect(await sample(exporter, 'bullpen_queue_workers', { lane: 'work' })).toBeGreaterThanOrEqual(1);
    expect(await sample(exporter, 'bullpen_redis_memory_used_bytes')).toBeGreaterThan(0);

    for (const app of [api, worker, exporter]) {
      expect(refusals(app)).toEqual([]);
      expect(app.logs().filter((l) => l.level === 'error')).toEqual([]);
    }
  }, 90_000);

  it('says Redis refused its credentials, and goes on by itself once the server takes them', async () => {
    const prefix = testPrefix('creds');
    // The password was rotated on the server before the apps got the new one.
    await aclUser('rotated', 'new-pw', prefix);
    const stale = env('rotated', 'old-pw', prefix);
    const [api, worker, exporter] = await Promise.all([
      spawnApi(stale, undefined, { until: refusedAccess }),
      spawnWorkerApp(stale, undefined, { until: refusedAccess }),
      spawnExporter(stale, undefined, { until: refusedAccess }),
    ]);
    apps.push(api, worker, exporter);

    const refused = await call(api, 'POST', '/v1/lanes/work/jobs', { name: 'noop' });
    expect(refused.status).toBe(503);
    expect(refused.body.code).toBe('redis_unavailable');
    expect(refused.body.detail).toMatch(/REDIS_URL.*WRONGPASS/);
    const ready = await fetch(`${api.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { detail: string }).detail).toMatch(/REDIS_URL.*WRONGPASS/);

    // Each app says so once (it retries every second or two), as JSON, naming where the password is.
    for (const app of [api, worker, exporter]) {
      const lines = refusals(app);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatchObject({ level: 'error' });
      expect(lines[0]!.error).toMatch(/Redis refused the user and password in REDIS_URL \(WRONGPASS/);
      expect(app.output()).not.toMatch(/ReplyError/);
    }

    // The server takes the old password too: everything goes on, nothing restarted.
    await admin.call('ACL', 'SETUSER', 'rotated', '>old-pw');
    const accepted = await waitUntil(
      async () => {
        const res = await call(api, 'POST', '/v1/lanes/work/jobs', { name: 'noop' });
        return res.status === 201 && (res.body.id as string);
      },
      { timeoutMs: 30_000, what: 'the API to take a job' },
    );
    await waitUntil(async () => (await jobState(api, accepted as string)) === 'completed', { timeoutMs: 30_000, what: 'the worker to run it' });
    await waitUntil(async () => (await sample(exporter, 'bullpen_jobs_completed_total', { lane: 'work' })) === 1, {
      timeoutMs: 30_000,
      what: 'the exporter to count it',
    });
    expect([api, worker, exporter].map((app) => app.exitCode())).toEqual([null, null, null]);
  }, 90_000);

  it('says why it cannot reach Redis at all, once however often it retries', async () => {
    // A wrong host or port looks like a Redis that is restarting unless someone says which.
    const closed = await freePort();
    const nowhere = { ...env('bullpen', 'pw', testPrefix('nowhere')), REDIS_URL: `redis://127.0.0.1:${closed}` };
    const [api, worker, exporter] = await Promise.all([
      spawnApi(nowhere, undefined, { until: unreachable }),
      spawnWorkerApp(nowhere, undefined, { until: unreachable }),
      spawnExporter(nowhere, undefined, { until: unreachable }),
    ]);
    apps.push(api, worker, exporter);
    const why = `connect ECONNREFUSED 127.0.0.1:${closed}`;
    const refused = await call(api, 'POST', '/v1/lanes/work/jobs', { name: 'noop' });
    expect(refused.status).toBe(503);
    expect(refused.body.detail).toBe(`Redis is reconnecting: ${why}`);
    // The exporter gives up waiting for its connection after a third of its lease (333 ms); every
    // connection has retried a few times by then (after 100, 200 and 400 ms): one line each.
    await waitUntil(() => exporter.logs().some((l) => l.msg === 'could not reach Redis for the leadership lease; trying again'), {
      what: 'the exporter to give up waiting for its first connection',
    });
    for (const app of [api, worker, exporter]) {
      expect(app.logs().filter((l) => l.msg === 'cannot reach redis')).toEqual([expect.objectContaining({ level: 'warn', error: why })]);
      expect(app.output()).not.toMatch(/^\s+at /m); // no raw stack traces
    }
  }, 90_000);

  it('names the permission an ACL user lacks: the worker stops with it, the API answers 503, the exporter logs it', async () => {
    const prefix = testPrefix('perm');
    // A common hardening: no dangerous commands. BullMQ reads the server's version with INFO.
    await aclUser('noinfo', 'pw', prefix, ['-info']);
    const base = env('noinfo', 'pw', prefix);

    const worker = spawnSync(process.execPath, [WORKER_MAIN], {
      env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', LOG_LEVEL: 'info', WORKER_METRICS_PORT: '0', ...base },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(worker.status).toBe(1);
    const lines = worker.stdout
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const stop = lines.find((l) => l.msg === 'cannot start');
    expect(stop).toMatchObject({ level: 'error' });
    expect(stop!.error).toMatch(/Redis user "noinfo" in REDIS_URL .*NOPERM.*'info'.*ACL SETUSER noinfo .*\+info/);
    expect(worker.stderr).not.toMatch(/ReplyError/);

    // Connected (ioredis skips its INFO ready check when refused), though BullMQ cannot start.
    const connected: LogCondition = (logs) => logs.some((l) => l.msg === 'redis ready');
    const [api, exporter] = await Promise.all([spawnApi(base, undefined, { until: connected }), spawnExporter(base)]);
    apps.push(api, exporter);
    const refused = await call(api, 'POST', '/v1/lanes/work/jobs', { name: 'noop' });
    expect(refused.status).toBe(503);
    expect(refused.body.code).toBe('redis_unavailable');
    expect(refused.body.detail).toMatch(/NOPERM.*'info'.*\+info/);
    expect(refusals(api)).toHaveLength(1);

    // The exporter's scrapes read no queue state, and its log says why.
    expect(await sample(exporter, 'bullpen_exporter_redis_up')).toBe(0);
    await waitUntil(async () => refusals(exporter).length > 0, { what: 'the exporter to log the refusal' });
    expect(refusals(exporter)[0]!.error).toMatch(/NOPERM.*'info'/);
  }, 120_000);

  it('names XREAD when Redis refuses the exporter its stream reads, once however often it retries, and does not claim to read', async () => {
    const prefix = testPrefix('noxread');
    await aclUser('noxread', 'pw', prefix, ['-xread']);
    const base = env('noxread', 'pw', prefix);
    const leading: LogCondition = (logs) => logs.some((l) => String(l.msg).startsWith('this exporter holds the leadership lease'));
    const [api, worker, exporter] = await Promise.all([spawnApi(base), spawnWorkerApp(base), spawnExporter(base, undefined, { until: leading })]);
    apps.push(api, worker, exporter);
    const job = await call(api, 'POST', '/v1/lanes/work/jobs', { name: 'noop' });
    expect(job.status).toBe(201);
    await waitUntil(async () => (await jobState(api, job.body.id as string)) === 'completed', { what: 'the job to complete' });

    // Redis counts the XREADs it refused (ACL LOG): the exporter has retried several times by then.
    const refusedReads = async () => {
      const entries = (await admin.call('ACL', 'LOG')) as unknown[][];
      const fields = entries.map((e) => Object.fromEntries(e.flatMap((v, i) => (i % 2 === 0 ? [[v, e[i + 1]]] : []))));
      return fields.filter((f) => f.username === 'noxread' && f.object === 'xread').reduce((n, f) => n + Number(f.count), 0);
    };
    await waitUntil(async () => (await refusedReads()) >= 5, { what: 'the exporter to retry its stream read' });
    await waitUntil(() => refusals(exporter).length > 0, { what: 'the exporter to log the refusal' });
    const lines = refusals(exporter);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'error' });
    expect(lines[0]!.error).toMatch(/Redis user "noxread" in REDIS_URL .*NOPERM.*'xread'.*ACL SETUSER noxread resetkeys/);
    expect(exporter.logs().filter((l) => String(l.msg).startsWith('reading lane streams failed'))).toEqual([]);

    // Redis answers the scrapes, but the exporter does not read on from its totals, and says why.
    const health = await fetch(`${exporter.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ ok: true, role: 'leader', reading: false, refused: expect.stringMatching(/'xread'/) });
    expect(await sample(exporter, 'bullpen_exporter_up')).toBe(0);
    expect(await sample(exporter, 'bullpen_exporter_redis_up')).toBe(1);
    expect(await sample(exporter, 'bullpen_jobs_completed_total', { lane: 'work' })).toBe(0);

    // Granted, it reads on by itself and counts the job.
    await admin.call('ACL', 'SETUSER', 'noxread', '+xread');
    await waitUntil(async () => (await sample(exporter, 'bullpen_jobs_completed_total', { lane: 'work' })) === 1, {
      what: 'the exporter to count the job once it may read',
    });
    expect(await (await fetch(`${exporter.url}/healthz`)).json()).toEqual({ ok: true, role: 'leader', reading: true, redis: 'ready' });
    expect(await sample(exporter, 'bullpen_exporter_up')).toBe(1);
    expect(exporter.exitCode()).toBeNull();
  }, 120_000);
});
