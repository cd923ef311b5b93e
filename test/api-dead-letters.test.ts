// Dead letters over REST against a real Redis: listing (tenant-filtered, newest first, cursor
// paging), redrive and purge. A plain BullMQ Worker stands in for bullpen's worker: it records an
// attempt row the way bullpen's does and fails the job permanently, which puts it in the failed set.
import http from 'node:http';
import { Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import type IORedis from 'ioredis';
import {
  createLogger,
  createRedis,
  deadCursorSecretKey,
  formatAttemptLogRow,
  JOB_FIELD,
  jobKeys,
  lanePrefix,
  laneStateKeys,
  unwrapJobData,
  type LanePolicy,
} from '@bullpen/core';
import { DeadLetters } from '../apps/api/src/dead-letters';
import { redriveDeadLetter } from '../apps/api/src/dead-letter-redrive';
import { LaneRegistry } from '../apps/api/src/lane-registry';
import { RedisGuard } from '../apps/api/src/redis-guard';
import { KEYS, startTestApi, type TestApi } from '../apps/api/test/harness';
import type { TestConfigOptions } from './support/config';
import { waitUntil } from './support/wait';
import { standaloneUrl } from './support/config';

const LANE = 'tool_call';
const DEAD = `/v1/lanes/${LANE}/dead`;
const REDRIVE = `${DEAD}/redrive`;

describe('producer API: dead letters', () => {
  let api: TestApi;
  let queue: Queue;
  const connections: IORedis[] = [];

  async function useApi(options: TestConfigOptions = {}): Promise<void> {
    api = await startTestApi(options);
    queue = new Queue(LANE, { connection: api.redis, prefix: lanePrefix(api.config.prefix, LANE) });
  }

  async function stopApi(): Promise<void> {
    await queue.close();
    await api.stop();
  }

  beforeEach(() => useApi());

  afterEach(async () => {
    connections.splice(0).forEach((c) => c.disconnect());
    await stopApi();
  });

  async function submit(key: string, body: Record<string, unknown> = {}): Promise<string> {
    const reply = await api.request('POST', `/v1/lanes/${LANE}/jobs`, { key, body: { name: 'flaky', ...body } });
    expect(reply.status).toBe(201);
    return reply.body.id as string;
  }

  async function states(ids: readonly string[]): Promise<string[]> {
    return Promise.all(ids.map((id) => queue.getJobState(id)));
  }

  /** Runs every waiting job of the lane through a worker with `processor` until `ids` are in `state`. */
  async function runUntil(ids: readonly string[], state: 'failed' | 'completed', processor: (job: Job) => Promise<unknown>): Promise<void> {
    const connection = createRedis(standaloneUrl(api.config), 'worker');
    connections.push(connection);
    const worker = new Worker(LANE, processor, { connection, prefix: lanePrefix(api.config.prefix, LANE) });
    worker.on('error', () => undefined);
    try {
      await waitUntil(async () => (await states(ids)).every((s) => s === state), { what: `jobs ${ids.join(', ')} to be ${state}` });
    } finally {
      await worker.close();
    }
  }

  /** Fails the lane's waiting jobs permanently, each with one attempt row, as bullpen's worker would. */
  function kill(ids: readonly string[]): Promise<void> {
    return runUntil(ids, 'failed', async (job) => {
      const message = `boom ${job.id}`;
      await job.log(
        formatAttemptLogRow({ attempt: job.attemptsMade + 1, errorClass: 'validation', message, delayMs: null, worker: 'test-worker', ts: Date.now() }),
      );
      throw new UnrecoverableError(message);
    });
  }

  function complete(ids: readonly string[]): Promise<void> {
    return runUntil(ids, 'completed', async () => 'ok');
  }

  async function jobOf(id: string): Promise<Job> {
    const job = await Job.fromId(queue, id);
    if (!job) throw new Error(`job ${id} is gone`);
    return job;
  }

  /** Newest first as Redis orders the failed set: by finish time, ties by id, both descending. */
  async function newestFirst(ids: readonly string[]): Promise<string[]> {
    const finished = new Map(await Promise.all(ids.map(async (id) => [id, (await jobOf(id)).finishedOn ?? 0] as const)));
    return [...ids].sort((a, b) => (finished.get(b) ?? 0) - (finished.get(a) ?? 0) || Buffer.compare(Buffer.from(b), Buffer.from(a)));
  }

  async function listAll(key: string, limit: number): Promise<{ ids: string[]; pages: number }> {
    const ids: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = cursor ? `?limit=${limit}&cursor=${encodeURIComponent(cursor)}` : `?limit=${limit}`;
      const reply = await api.request('GET', `${DEAD}${query}`, { key });
      expect(reply.status).toBe(200);
      ids.push(...reply.body.items.map((item: { id: string }) => item.id));
      cursor = reply.body.nextCursor;
      pages += 1;
    } while (cursor);
    return { ids, pages };
  }

  it("lists only the caller's dead jobs, newest first, with their reason, error class and attempt history", async () => {
    const acme = [await submit(KEYS.acme), await submit(KEYS.acme), await submit(KEYS.acme)];
    const beta = [await submit(KEYS.beta), await submit(KEYS.beta)];
    await kill([...acme, ...beta]);
    await submit(KEYS.acme); // waiting: not a dead letter

    const reply = await api.request('GET', DEAD);
    expect(reply.status).toBe(200);
    expect(reply.body.nextCursor).toBeNull();
    expect(reply.body.items.map((item: { id: string }) => item.id)).toEqual(await newestFirst(acme));
    const [first] = reply.body.items;
    const finishedOn = (await jobOf(first.id)).finishedOn ?? 0;
    expect(first).toEqual({
      id: first.id,
      name: 'flaky',
      failedReason: `boom ${first.id}`,
      errorClass: 'validation',
      attemptsMade: 1,
      createdAt: expect.any(String),
      finishedAt: new Date(finishedOn).toISOString(),
      attempts: [{ attempt: 1, errorClass: 'validation', message: `boom ${first.id}`, delayMs: null, worker: 'test-worker', at: expect.any(String) }],
    });

    const asBeta = await api.request('GET', DEAD, { key: KEYS.beta });
    expect(asBeta.body.items.map((item: { id: string }) => item.id)).toEqual(await newestFirst(beta));
  });

  it('pages through dead jobs with the cursor, skipping and repeating none while a new failure arrives between pages', async () => {
    const acme: string[] = [];
    for (const key of [KEYS.acme, KEYS.beta, KEYS.acme, KEYS.beta, KEYS.acme, KEYS.beta, KEYS.acme, KEYS.acme]) {
      const id = await submit(key);
      if (key === KEYS.acme) acme.push(id);
    }
    await kill(await queue.getWaiting().then((jobs) => jobs.map((job) => String(job.id))));
    const expected = await newestFirst(acme);

    const first = await api.request('GET', `${DEAD}?limit=2`);
    expect(first.body.items.map((item: { id: string }) => item.id)).toEqual(expected.slice(0, 2));
    expect(first.body.nextCursor).toEqual(expect.any(String));

    const late = await submit(KEYS.acme);
    await kill([late]);

    const seen: string[] = first.body.items.map((item: { id: string }) => item.id);
    let cursor: string | null = first.body.nextCursor;
    while (cursor) {
      const page = await api.request('GET', `${DEAD}?limit=2&cursor=${encodeURIComponent(cursor)}`);
      expect(page.status).toBe(200);
      expect(page.body.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.items.map((item: { id: string }) => item.id));
      cursor = page.body.nextCursor;
    }
    expect(seen).toEqual(expected);

    // The failure that arrived meanwhile is newer than the first page: a fresh listing starts with it.
    const fresh = await listAll(KEYS.acme, 500);
    expect(fresh).toEqual({ ids: [late, ...expected], pages: 1 });
  });

  it('pages correctly through dead jobs that failed in the same millisecond, across batches and the per-page scan bound', async () => {
    const acme: string[] = [];
    for (const key of [KEYS.acme, KEYS.beta, KEYS.beta, KEYS.acme, KEYS.beta, KEYS.acme, KEYS.beta, KEYS.acme]) {
      const id = await submit(key);
      if (key === KEYS.acme) acme.push(id);
    }
    await kill(await queue.getWaiting().then((jobs) => jobs.map((job) => String(job.id))));
    // Jobs failing in the same millisecond share a score; force that for all of them.
    const failedKey = laneStateKeys(api.config.prefix, LANE).failed;
    const members = await api.redis.zrange(failedKey, 0, -1);
    expect(members).toHaveLength(8);
    await api.redis.zadd(failedKey, 'XX', ...members.flatMap((member) => [1_700_000_000_000, member]));
    const expected = [...acme].sort((a, b) => Buffer.compare(Buffer.from(b), Buffer.from(a)));

    // Through the API (batches of 200, no scan bound in play): one page per item, and an empty last
    // page when beta's jobs follow acme's last one (the cursor cannot know they are not acme's).
    const viaApi = await listAll(KEYS.acme, 1);
    expect(viaApi.ids).toEqual(expected);
    expect([4, 5]).toContain(viaApi.pages);

    const guard = new RedisGuard(api.producer);
    const lanes = new LaneRegistry(api.config, api.producer, createLogger('api', 'error'));
    try {
      // Batches of 2 over 8 tied entries, and a page scans at most 3 entries of all tenants.
      const dead = new DeadLetters({ config: api.config, redis: api.producer, guard, lanes }, { batchSize: 2, maxScannedPerPage: 3 });
      for (const limit of [1, 2, 10]) {
        const ids: string[] = [];
        let pages = 0;
        let cursor: string | undefined;
        do {
          const page = await dead.list(LANE, 'acme', cursor ? { limit, cursor } : { limit });
          expect(page.items.length).toBeLessThanOrEqual(limit);
          ids.push(...page.items.map((item) => item.id));
          cursor = page.nextCursor ?? undefined;
          pages += 1;
        } while (cursor);
        expect([limit, ids]).toEqual([limit, expected]);
        // Every entry is scanned once, at most 3 per page: at least 3 pages however large the limit.
        if (limit === 10) expect(pages).toBe(3);
        else expect(pages).toBeGreaterThanOrEqual(Math.max(3, expected.length / limit));
      }
    } finally {
      await lanes.close();
    }
  });

  it("gives a tenant whose page ends among another tenant's dead letters a cursor that reveals none of their ids or failure times, and that only it can use, in that lane", async () => {
    const beta: string[] = [];
    for (let i = 0; i < 5; i += 1) beta.push(await submit(KEYS.beta));
    await kill(beta);
    const finished = await Promise.all(beta.map(async (id) => String((await jobOf(id)).finishedOn)));

    // acme has no dead letters: a page that may scan 3 entries ends at beta's third newest.
    const guard = new RedisGuard(api.producer);
    const lanes = new LaneRegistry(api.config, api.producer, createLogger('api', 'error'));
    let cursor = '';
    try {
      const dead = new DeadLetters({ config: api.config, redis: api.producer, guard, lanes }, { maxScannedPerPage: 3 });
      const page = await dead.list(LANE, 'acme', { limit: 10 });
      expect(page.items).toEqual([]);
      expect(page.nextCursor).toEqual(expect.any(String));
      cursor = page.nextCursor as string;

      // Read as base64 of any flavour, or as JSON, it names nothing of beta's.
      const bytes = Buffer.from(cursor, 'base64url');
      const readings = [cursor, bytes.toString('utf8'), bytes.toString('latin1'), bytes.toString('hex'), Buffer.from(cursor, 'base64').toString('utf8')];
      for (const text of readings) {
        for (const secret of [...beta, ...finished]) expect([text, text.includes(secret)]).toEqual([text, false]);
      }
      expect(() => JSON.parse(bytes.toString('utf8'))).toThrow();

      // The next page scans the rest of beta's, and ends the listing.
      expect(await dead.list(LANE, 'acme', { limit: 10, cursor })).toEqual({ items: [], nextCursor: null });
    } finally {
      await lanes.close();
    }

    const refused = async (key: string, lane: string, text: string) => {
      const reply = await api.request('GET', `/v1/lanes/${lane}/dead?cursor=${encodeURIComponent(text)}`, { key });
      return [reply.status, reply.body.code, reply.body.errors];
    };
    const invalid = [400, 'validation_failed', [{ field: 'query.cursor', message: 'expected the nextCursor of a previous page' }]];
    // acme's cursor works for acme in this lane ...
    expect((await api.request('GET', `${DEAD}?cursor=${cursor}`, { key: KEYS.acme })).status).toBe(200);
    // ... not for beta, not in another lane, and not once a character of it is changed.
    expect(await refused(KEYS.beta, LANE, cursor)).toEqual(invalid);
    expect(await refused(KEYS.acme, 'critic', cursor)).toEqual(invalid);
    const bytes = Buffer.from(cursor, 'base64url');
    for (const at of [0, Math.floor(bytes.length / 2), bytes.length - 1]) {
      const tampered = Buffer.from(bytes);
      tampered[at] = (tampered[at] ?? 0) ^ 1;
      expect(await refused(KEYS.acme, LANE, tampered.toString('base64url'))).toEqual(invalid);
    }
    expect(await refused(KEYS.acme, LANE, cursor.slice(0, -4))).toEqual(invalid);
    // A Redis that lost the key makes a new one: cursors sealed before are refused the same way.
    await api.redis.del(deadCursorSecretKey(api.config.prefix));
    expect(await refused(KEYS.acme, LANE, cursor)).toEqual(invalid);
    expect((await api.request('GET', DEAD, { key: KEYS.acme })).status).toBe(200);
  });

  it('redrives listed dead jobs with fresh attempts and a later deadline, answers not_found and not_dead for the rest, and they then complete', async () => {
    const [a, b, c] = [
      await submit(KEYS.acme, { deadlineMs: 60_000 }),
      await submit(KEYS.acme, { deadlineMs: 60_000 }),
      await submit(KEYS.acme, { deadlineMs: 60_000 }),
    ] as [string, string, string];
    const other = await submit(KEYS.beta);
    await kill([a, b, c, other]);
    const waiting = await submit(KEYS.acme);
    const before = new Map(await Promise.all([a, b].map(async (id) => [id, await jobOf(id)] as const)));
    // As a job that died after its lane's free rate-limited retries leaves it.
    await api.redis.hset(jobKeys(api.config.prefix, LANE, a).job, JOB_FIELD.rateLimitedRetries, 20);

    const startedAt = Date.now();
    const reply = await api.request('POST', REDRIVE, { body: { ids: [a, other, waiting, 'no-such-job', b] } });
    const endedAt = Date.now();
    expect(reply.status).toBe(200);
    expect(reply.body).toEqual({
      lane: LANE,
      redriven: 2,
      notFound: 2,
      notDead: 1,
      claimed: 0,
      results: [
        { id: a, status: 'redriven' },
        { id: other, status: 'not_found' },
        { id: waiting, status: 'not_dead' },
        { id: 'no-such-job', status: 'not_found' },
        { id: b, status: 'redriven' },
      ],
    });

    expect(await states([a, b, c, other, waiting])).toEqual(['waiting', 'waiting', 'failed', 'failed', 'waiting']);
    for (const id of [a, b]) {
      const old = before.get(id) as Job;
      const oldDeadline = unwrapJobData(old.data).meta?.deadlineAt as number;
      const window = oldDeadline - old.timestamp;
      const job = await jobOf(id);
      const deadlineAt = unwrapJobData(job.data).meta?.deadlineAt as number;
      expect(job.attemptsMade).toBe(0);
      expect(deadlineAt).toBeGreaterThan(oldDeadline);
      expect(deadlineAt).toBeGreaterThanOrEqual(startedAt + window);
      expect(deadlineAt).toBeLessThanOrEqual(endedAt + window);
      // It waits in line again from its redrive: the worker's wait time and the exporter's
      // oldest-waiting age count from then, not from the enqueue.
      const redrivenAt = unwrapJobData(job.data).meta?.redrivenAt as number;
      expect(redrivenAt).toBeGreaterThanOrEqual(startedAt);
      expect(redrivenAt).toBeLessThanOrEqual(endedAt);
      expect(unwrapJobData(job.data)).toEqual({ data: unwrapJobData(old.data).data, meta: { ...unwrapJobData(old.data).meta, deadlineAt, redrivenAt } });
      expect(await api.redis.hget(jobKeys(api.config.prefix, LANE, id).job, JOB_FIELD.redrivenAt)).toBe(String(redrivenAt));
      // It gets the lane's free rate-limited retries again.
      expect(await api.redis.hget(jobKeys(api.config.prefix, LANE, id).job, JOB_FIELD.rateLimitedRetries)).toBeNull();
      // The attempt history stays with the job.
      const status = await api.request('GET', `/v1/lanes/${LANE}/jobs/${id}`);
      expect(status.body).toMatchObject({ state: 'waiting', attemptsMade: 0, failedReason: null, attempts: [{ attempt: 1, message: `boom ${id}` }] });
    }
    expect((await jobOf(c)).attemptsMade).toBe(1);
    expect((await jobOf(other)).attemptsMade).toBe(1);

    await complete([a, b]);
    expect(await states([c, other])).toEqual(['failed', 'failed']);
    expect((await jobOf(a)).attemptsMade).toBe(1);
  });

  it('gives a job redriven a second time the same deadline budget as its first, not one grown by the time since its enqueue', async () => {
    const id = await submit(KEYS.acme, { deadlineMs: 60_000 });
    await kill([id]);
    expect((await api.request('POST', REDRIVE, { body: { ids: [id] } })).body.results).toEqual([{ id, status: 'redriven' }]);
    const first = unwrapJobData((await jobOf(id)).data).meta;
    const budget = (first?.deadlineAt as number) - (first?.redrivenAt as number);
    expect(budget).toBeGreaterThan(59_000);
    expect(budget).toBeLessThanOrEqual(60_000);
    // As if the job had been enqueued an hour before that first redrive.
    await api.redis.hset(jobKeys(api.config.prefix, LANE, id).job, 'timestamp', (await jobOf(id)).timestamp - 3_600_000);
    await kill([id]);

    const startedAt = Date.now();
    expect((await api.request('POST', REDRIVE, { body: { ids: [id] } })).body.results).toEqual([{ id, status: 'redriven' }]);
    const endedAt = Date.now();
    const second = unwrapJobData((await jobOf(id)).data).meta;
    expect(second?.deadlineAt).toBeGreaterThanOrEqual(startedAt + budget);
    expect(second?.deadlineAt).toBeLessThanOrEqual(endedAt + budget);
    expect((second?.deadlineAt as number) - (second?.redrivenAt as number)).toBe(budget);
  });

  it("redrives all of the caller's dead jobs with {}, leaving other tenants' dead jobs dead", async () => {
    const a = await submit(KEYS.acme, { deadlineMs: 30_000 });
    const b = await submit(KEYS.acme);
    const other = await submit(KEYS.beta);
    await kill([a, b, other]);
    const oldDeadline = unwrapJobData((await jobOf(a)).data).meta?.deadlineAt as number;

    const reply = await api.request('POST', REDRIVE, { body: {} });
    expect(reply.status).toBe(200);
    expect(reply.body).toMatchObject({ lane: LANE, redriven: 2, notFound: 0, notDead: 0 });
    expect(reply.body.results).toEqual(
      expect.arrayContaining([
        { id: a, status: 'redriven' },
        { id: b, status: 'redriven' },
      ]),
    );
    expect(reply.body.results).toHaveLength(2);

    expect(await states([a, b, other])).toEqual(['waiting', 'waiting', 'failed']);
    expect((await jobOf(a)).attemptsMade).toBe(0);
    expect((await jobOf(b)).attemptsMade).toBe(0);
    expect(unwrapJobData((await jobOf(a)).data).meta?.deadlineAt).toBeGreaterThan(oldDeadline);
    expect(unwrapJobData((await jobOf(b)).data).meta?.deadlineAt).toBeUndefined();
    expect((await jobOf(other)).attemptsMade).toBe(1);

    await complete([a, b]);
    expect(await states([other])).toEqual(['failed']);
    expect((await api.request('GET', DEAD)).body).toEqual({ items: [], nextCursor: null });
  });

  it('redrives and purges with failedBefore only the dead letters that failed at or before it, and answers every call of all with the bound it used', async () => {
    const older = [await submit(KEYS.acme), await submit(KEYS.acme)];
    await kill(older);
    const bound = Math.max(...(await Promise.all(older.map(async (id) => (await jobOf(id)).finishedOn ?? 0))));
    const newer = await submit(KEYS.acme);
    // Failed after the bound, as a job redriven by the first call of a redrive that died again has.
    await waitUntil(() => Date.now() > bound, { what: 'a later millisecond' });
    await kill([newer]);
    expect((await jobOf(newer)).finishedOn).toBeGreaterThan(bound);

    const redrive = await api.request('POST', REDRIVE, { body: { failedBefore: bound } });
    expect(redrive.status).toBe(200);
    expect(redrive.body).toMatchObject({ redriven: 2, failedBefore: bound });
    expect(redrive.body.results.map((r: { id: string }) => r.id).sort()).toEqual([...older].sort());
    expect(await states([...older, newer])).toEqual(['waiting', 'waiting', 'failed']);

    const before = Date.now();
    const purge = await api.request('DELETE', DEAD, { body: { failedBefore: bound } });
    expect(purge.body).toMatchObject({ purged: 0, results: [], failedBefore: bound });
    // Without one, the bound is the call's start.
    const all = await api.request('DELETE', DEAD);
    expect(all.body).toMatchObject({ purged: 1, results: [{ id: newer, status: 'purged' }] });
    expect(all.body.failedBefore).toBeGreaterThanOrEqual(before);
    expect(all.body.failedBefore).toBeLessThanOrEqual(Date.now());
    // A call of listed ids has no bound.
    expect((await api.request('POST', REDRIVE, { body: { ids: [newer] } })).body).not.toHaveProperty('failedBefore');
  });

  it('redrives even when the lane is full: admission does not apply to an operator action', async () => {
    await stopApi();
    await useApi({ lanesFile: { lanes: { [LANE]: { concurrency: 1, maxQueueSize: 1 }, critic: { concurrency: 1 } } } });
    const a = await submit(KEYS.acme);
    await kill([a]);
    await submit(KEYS.acme);
    const full = await api.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'flaky' } });
    expect(full.status).toBe(429);

    const reply = await api.request('POST', REDRIVE, { body: { ids: [a] } });
    expect(reply.body.results).toEqual([{ id: a, status: 'redriven' }]);
    expect(await api.backlog(LANE)).toBe(2);
  });

  it("purges listed dead jobs with their history, answering not_found for another tenant's and not_dead for a waiting job", async () => {
    const [a, b] = [await submit(KEYS.acme), await submit(KEYS.acme)];
    const other = await submit(KEYS.beta);
    await kill([a, b, other]);
    const waiting = await submit(KEYS.acme);

    const reply = await api.request('DELETE', DEAD, { body: { ids: [a, other, waiting, 'missing'] } });
    expect(reply.status).toBe(200);
    expect(reply.body).toEqual({
      lane: LANE,
      purged: 1,
      notFound: 2,
      notDead: 1,
      claimed: 0,
      results: [
        { id: a, status: 'purged' },
        { id: other, status: 'not_found' },
        { id: waiting, status: 'not_dead' },
        { id: 'missing', status: 'not_found' },
      ],
    });
    expect(await Job.fromId(queue, a)).toBeUndefined();
    expect(await api.redis.exists(jobKeys(api.config.prefix, LANE, a).logs)).toBe(0);
    expect(await states([b, other, waiting])).toEqual(['failed', 'failed', 'waiting']);
  });

  it("purges all of the caller's dead jobs on DELETE without a body or with {}, and no one else's", async () => {
    const [a, b] = [await submit(KEYS.acme), await submit(KEYS.acme)];
    const other = await submit(KEYS.beta);
    await kill([a, b, other]);

    const all = await api.request('DELETE', DEAD);
    expect(all.status).toBe(200);
    expect(all.body).toMatchObject({ lane: LANE, purged: 2, notFound: 0, notDead: 0 });
    expect(all.body.results).toEqual(expect.arrayContaining([{ id: a, status: 'purged' }, { id: b, status: 'purged' }]));
    expect(await states([a, b, other])).toEqual(['unknown', 'unknown', 'failed']);

    const c = await submit(KEYS.acme);
    await kill([c]);
    const empty = await api.request('DELETE', DEAD, { body: {} });
    expect(empty.body).toEqual({ lane: LANE, purged: 1, notFound: 0, notDead: 0, claimed: 0, failedBefore: expect.any(Number), results: [{ id: c, status: 'purged' }] });
    expect(await api.redis.zrange(laneStateKeys(api.config.prefix, LANE).failed, 0, -1)).toEqual([other]);
  });

  it('leaves a job that another redrive or purge holds to that call, answering claimed with when to retry, not not_dead', async () => {
    const [a, b] = [await submit(KEYS.acme), await submit(KEYS.acme)];
    await kill([a, b]);
    // As if another API process were redriving or purging `a` right now, or had died doing so.
    const claim = jobKeys(api.config.prefix, LANE, a).deadLetterClaim;
    await api.redis.set(claim, '1', 'PX', 20_000);

    const purge = await api.request('DELETE', DEAD, { body: { ids: [a, b] } });
    expect(purge.body).toMatchObject({ purged: 1, notDead: 0, claimed: 1 });
    expect(purge.body.retryAfterSeconds).toBeGreaterThanOrEqual(19);
    expect(purge.body.retryAfterSeconds).toBeLessThanOrEqual(20);
    expect(purge.body.results).toEqual([
      { id: a, status: 'claimed' },
      { id: b, status: 'purged' },
    ]);
    const redrive = await api.request('POST', REDRIVE, { body: { ids: [a] } });
    expect(redrive.body).toMatchObject({ redriven: 0, notDead: 0, claimed: 1, results: [{ id: a, status: 'claimed' }] });
    const redriveAll = await api.request('POST', REDRIVE, { body: {} });
    expect(redriveAll.body).toMatchObject({ redriven: 0, notDead: 0, claimed: 1, results: [{ id: a, status: 'claimed' }] });
    expect(await states([a])).toEqual(['failed']);

    await api.redis.del(claim);
    const released = await api.request('POST', REDRIVE, { body: { ids: [a] } });
    expect(released.body.results).toEqual([{ id: a, status: 'redriven' }]);
    expect(released.body).not.toHaveProperty('retryAfterSeconds');
    // Each call gives its claims back.
    expect(await api.redis.exists(claim)).toBe(0);
  });

  it('never deletes a job that a concurrent redrive put back to work', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 60; i += 1) ids.push(await submit(KEYS.acme));
    await kill(ids);

    const [redrive, purge] = await Promise.all([
      api.request('POST', REDRIVE, { body: { ids } }),
      api.request('DELETE', DEAD, { body: { ids: [...ids].reverse() } }),
    ]);
    expect([redrive.status, purge.status]).toEqual([200, 200]);
    const redriven = new Set(redrive.body.results.filter((r: { status: string }) => r.status === 'redriven').map((r: { id: string }) => r.id));
    const purged = new Set(purge.body.results.filter((r: { status: string }) => r.status === 'purged').map((r: { id: string }) => r.id));
    // Every job was either redriven or purged, never both, and each is where its answer says.
    expect(redriven.size + purged.size).toBe(ids.length);
    const after = await states(ids);
    ids.forEach((id, i) => {
      if (redriven.has(id)) expect([id, after[i]]).toEqual([id, 'waiting']);
      else expect([id, after[i]]).toEqual([id, 'unknown']);
    });
  });

  it('leaves no hash behind, and answers not_found, when retention removes a dead job while it is being redriven', async () => {
    const [a, b] = [await submit(KEYS.acme), await submit(KEYS.acme)];
    // A job a plain BullMQ producer added: no envelope, so the redrive writes no data to it.
    const c = String((await queue.add('plain', { n: 1 })).id);
    await kill([a, b, c]);
    const redriveOne = (job: Job): Promise<string> =>
      redriveDeadLetter({ config: api.config, redis: api.producer }, job, api.config.lanes[LANE] as LanePolicy);
    // a: removed as BullMQ's removeOnFail removes it, just after the redrive wrote its envelope.
    const jobA = await jobOf(a);
    const updateData = jobA.updateData.bind(jobA);
    jobA.updateData = async (data) => {
      await updateData(data);
      await queue.remove(a);
    };
    // b and c: removed after they were found dead, before their redrive began.
    const [jobB, jobC] = [await jobOf(b), await jobOf(c)];
    await Promise.all([queue.remove(b), queue.remove(c)]);

    expect([await redriveOne(jobA), await redriveOne(jobB), await redriveOne(jobC)]).toEqual(['not_found', 'not_found', 'not_found']);
    for (const id of [a, b, c]) expect([id, await api.redis.keys(`${jobKeys(api.config.prefix, LANE, id).job}*`)]).toEqual([id, []]);
  });

  it("lets another tenant neither list, redrive nor purge a tenant's dead jobs", async () => {
    const [a, b] = [await submit(KEYS.acme), await submit(KEYS.acme)];
    const other = await submit(KEYS.beta);
    await kill([a, b, other]);

    const list = await api.request('GET', DEAD, { key: KEYS.beta });
    expect(list.body.items.map((item: { id: string }) => item.id)).toEqual([other]);
    const redrive = await api.request('POST', REDRIVE, { key: KEYS.beta, body: { ids: [a, b] } });
    expect(redrive.body).toEqual({
      lane: LANE,
      redriven: 0,
      notFound: 2,
      notDead: 0,
      claimed: 0,
      results: [
        { id: a, status: 'not_found' },
        { id: b, status: 'not_found' },
      ],
    });
    const purge = await api.request('DELETE', DEAD, { key: KEYS.beta, body: { ids: [a] } });
    expect(purge.body.results).toEqual([{ id: a, status: 'not_found' }]);
    // "All" means all of the caller's own.
    const redriveAll = await api.request('POST', REDRIVE, { key: KEYS.beta, body: {} });
    expect(redriveAll.body.results).toEqual([{ id: other, status: 'redriven' }]);
    const purgeAll = await api.request('DELETE', DEAD, { key: KEYS.beta });
    expect(purgeAll.body).toEqual({ lane: LANE, purged: 0, notFound: 0, notDead: 0, claimed: 0, failedBefore: expect.any(Number), results: [] });

    expect(await states([a, b])).toEqual(['failed', 'failed']);
    for (const id of [a, b]) {
      expect(await jobOf(id)).toMatchObject({ attemptsMade: 1, failedReason: `boom ${id}` });
    }
    expect((await listAll(KEYS.acme, 50)).ids).toEqual(await newestFirst([a, b]));
  });

  it('answers bad input with 400 naming the field, 415, 404, 401 and 403, and changes nothing', async () => {
    const a = await submit(KEYS.acme);
    await kill([a]);
    const json = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const tooMany = Array.from({ length: 1001 }, (_, i) => `job-${i}`);
    const cases: [string, string, Parameters<TestApi['request']>[2], number, string, string?][] = [
      ['GET', `${DEAD}?limit=0`, {}, 400, 'validation_failed', 'query.limit'],
      ['GET', `${DEAD}?limit=501`, {}, 400, 'validation_failed', 'query.limit'],
      ['GET', `${DEAD}?limit=ten`, {}, 400, 'validation_failed', 'query.limit'],
      ['GET', `${DEAD}?limit=1&limit=2`, {}, 400, 'validation_failed', 'query.limit'],
      // Number() would read these as 16, 100 and 5.
      ['GET', `${DEAD}?limit=0x10`, {}, 400, 'validation_failed', 'query.limit'],
      ['GET', `${DEAD}?limit=1e2`, {}, 400, 'validation_failed', 'query.limit'],
      ['GET', `${DEAD}?limit=%205`, {}, 400, 'validation_failed', 'query.limit'],
      ['GET', `${DEAD}?cursor=not*a*cursor`, {}, 400, 'validation_failed', 'query.cursor'],
      ['GET', `${DEAD}?cursor=${json({ score: 1, id: 'x' })}`, {}, 400, 'validation_failed', 'query.cursor'],
      ['GET', `${DEAD}?cursor=${json([1, ''])}`, {}, 400, 'validation_failed', 'query.cursor'],
      // A position in the clear, as cursors once were, is no cursor.
      ['GET', `${DEAD}?cursor=${json([Date.now(), a])}`, {}, 400, 'validation_failed', 'query.cursor'],
      ['GET', `${DEAD}?page=2`, {}, 400, 'validation_failed', 'query.page'],
      ['POST', REDRIVE, { body: { ids: [] } }, 400, 'validation_failed', 'body.ids'],
      ['POST', REDRIVE, { body: { ids: [a, 'b', 'c', 42] } }, 400, 'validation_failed', 'body.ids[3]'],
      ['POST', REDRIVE, { body: { ids: [a, 'b', a] } }, 400, 'validation_failed', 'body.ids[2]'],
      ['POST', REDRIVE, { body: { ids: [a, ...tooMany] } }, 400, 'validation_failed', 'body.ids'],
      ['POST', REDRIVE, { body: { ids: [a], all: true } }, 400, 'validation_failed', 'body.all'],
      // The bound is of a call for all, a time in ms.
      ['POST', REDRIVE, { body: { ids: [a], failedBefore: Date.now() } }, 400, 'validation_failed', 'body.failedBefore'],
      ['POST', REDRIVE, { body: { failedBefore: '2026-01-01' } }, 400, 'validation_failed', 'body.failedBefore'],
      ['POST', REDRIVE, { body: { failedBefore: 1.5 } }, 400, 'validation_failed', 'body.failedBefore'],
      ['DELETE', DEAD, { body: { failedBefore: -1 } }, 400, 'validation_failed', 'body.failedBefore'],
      ['DELETE', DEAD, { body: { ids: [a], failedBefore: 0 } }, 400, 'validation_failed', 'body.failedBefore'],
      ['POST', REDRIVE, { body: [a] }, 400, 'validation_failed', 'body'],
      ['POST', REDRIVE, {}, 400, 'validation_failed', 'body'],
      // null, or an empty body sent as JSON (Content-Length: 0), is a lost body, never "all".
      ['POST', REDRIVE, { raw: 'null' }, 400, 'validation_failed', 'body'],
      ['POST', REDRIVE, { raw: '' }, 400, 'validation_failed', 'body'],
      ['DELETE', DEAD, { raw: 'null' }, 400, 'validation_failed', 'body'],
      ['DELETE', DEAD, { raw: '' }, 400, 'validation_failed', 'body'],
      ['DELETE', DEAD, { body: [a] }, 400, 'validation_failed', 'body'],
      ['DELETE', DEAD, { headers: { 'content-type': 'application/json' } }, 400, 'validation_failed', 'body'],
      ['POST', REDRIVE, { raw: '{"ids": [' }, 400, 'malformed_json'],
      ['POST', REDRIVE, { raw: `ids=${a}`, headers: { 'content-type': 'text/plain' } }, 415, 'unsupported_media_type'],
      ['DELETE', DEAD, { body: { ids: [a, ''] } }, 400, 'validation_failed', 'body.ids[1]'],
      ['DELETE', DEAD, { body: { ids: a } }, 400, 'validation_failed', 'body.ids'],
      ['DELETE', DEAD, { raw: '{"ids":' }, 400, 'malformed_json'],
      ['DELETE', DEAD, { raw: `ids=${a}`, headers: { 'content-type': 'text/plain' } }, 415, 'unsupported_media_type'],
      ['GET', '/v1/lanes/nope/dead', {}, 404, 'lane_not_found'],
      ['POST', '/v1/lanes/nope/dead/redrive', { body: {} }, 404, 'lane_not_found'],
      ['DELETE', '/v1/lanes/nope/dead', {}, 404, 'lane_not_found'],
      ['GET', DEAD, { key: null }, 401, 'unauthorized'],
      ['POST', REDRIVE, { key: 'wrong-key', body: {} }, 401, 'unauthorized'],
      ['DELETE', DEAD, { key: null }, 401, 'unauthorized'],
      ['GET', DEAD, { key: KEYS.acmeCriticOnly }, 403, 'lane_forbidden'],
      ['POST', REDRIVE, { key: KEYS.acmeCriticOnly, body: {} }, 403, 'lane_forbidden'],
      ['DELETE', DEAD, { key: KEYS.acmeCriticOnly }, 403, 'lane_forbidden'],
    ];
    for (const [method, path, options, status, code, field] of cases) {
      const reply = await api.request(method, path, options);
      const label = `${method} ${path.slice(0, 80)} ${JSON.stringify(options).slice(0, 80)}`;
      expect([label, reply.status, reply.body.code]).toEqual([label, status, code]);
      expect(reply.headers.get('content-type')).toContain('application/problem+json');
      if (field) expect([label, reply.body.errors.map((e: { field: string }) => e.field)]).toEqual([label, [field]]);
    }
    // Validated before anything changed: the listed valid id is still dead, as it was.
    expect(await states([a])).toEqual(['failed']);
    expect((await jobOf(a)).attemptsMade).toBe(1);
  });

  it('refuses an empty JSON body sent chunked or with Content-Length: 0, and purges all only when there is no body at all', async () => {
    const a = await submit(KEYS.acme);
    await kill([a]);
    /** A request whose framing fetch would not send: explicit headers, and no body bytes. */
    const send = (method: string, path: string, headers: Record<string, string>) =>
      new Promise<{ status: number; body: { code?: string; errors?: { field: string }[]; purged?: number } }>((resolve, reject) => {
        const req = http.request(`${api.url}${path}`, { method, headers: { authorization: `Bearer ${KEYS.acme}`, ...headers } }, (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
        });
        req.on('error', reject);
        req.end();
      });
    const json = { 'content-type': 'application/json' };
    for (const [method, path] of [
      ['POST', REDRIVE],
      ['DELETE', DEAD],
    ] as const) {
      for (const framing of [{ 'transfer-encoding': 'chunked' }, { 'content-length': '0' }] as Record<string, string>[]) {
        const reply = await send(method, path, { ...json, ...framing });
        const label = `${method} ${JSON.stringify(framing)}`;
        expect([label, reply.status, reply.body.code, reply.body.errors]).toEqual([label, 400, 'validation_failed', [{ field: 'body', message: 'required' }]]);
      }
    }
    expect(await states([a])).toEqual(['failed']);

    // No Content-Type and no bytes: the documented "all".
    const all = await send('DELETE', DEAD, { 'content-length': '0' });
    expect([all.status, all.body.purged]).toEqual([200, 1]);
    expect(await states([a])).toEqual(['unknown']);
  });

  it('documents the three dead-letter routes in /openapi.json', async () => {
    const reply = await api.request('GET', '/openapi.json', { key: null });
    const { paths, components } = reply.body;
    expect(Object.keys(paths[`/v1/lanes/{lane}/dead`])).toEqual(expect.arrayContaining(['get', 'delete']));
    expect(paths['/v1/lanes/{lane}/dead/redrive'].post.requestBody.content['application/json'].schema).toEqual({
      $ref: '#/components/schemas/DeadLetterSelection',
    });
    expect(paths['/v1/lanes/{lane}/dead/redrive'].post.description).toMatch(/maxQueueSize\) does not apply/);
    expect(paths['/v1/lanes/{lane}/dead'].get.parameters.map((p: { name: string }) => p.name)).toEqual(['lane', 'limit', 'cursor']);
    expect(paths['/v1/lanes/{lane}/dead'].get.parameters[1].schema).toMatchObject({ type: 'integer', minimum: 1, maximum: 500, default: 50 });
    for (const id of ['DeadLetter', 'DeadLetterPage', 'DeadLetterSelection', 'RedriveResult', 'PurgeResult']) {
      expect([id, typeof components.schemas[id]]).toEqual([id, 'object']);
    }
    expect(components.schemas.DeadLetterSelection.properties.ids).toMatchObject({ maxItems: 1000, minItems: 1 });
  });
});
