// A redrive or purge of many dead letters is one request that works through them in batches. When
// the API stops (SIGTERM, a rolling restart) the call under way ends between two batches and answers
// 503 api_stopping with what it did, giving back its claims. Before, the HTTP server's 5 s grace
// cut the call mid-batch and the process exited holding the batch's claims: for 30 s those dead
// letters were answered not_dead to the retry, which exited 0 with them still dead.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import IORedis from 'ioredis';
import { createLogger, lanePrefix, laneBacklogKeys, laneStateKeys, wrapJobData } from '@bullpen/core';
import { DeadLetters } from '../apps/api/src/dead-letters';
import { JobsInFlight } from '../apps/api/src/jobs-in-flight';
import { LaneRegistry } from '../apps/api/src/lane-registry';
import { ProblemError } from '../apps/api/src/problem';
import { RedisGuard } from '../apps/api/src/redis-guard';
import { startLatencyProxy } from '../apps/api/test/harness';
import { cleanupPrefix, testConfig } from './support/config';
import { freePort } from './support/redis-server';
import { redisUrl, testPrefix, waitUntil } from './support/wait';

const MAIN = path.resolve(__dirname, '../apps/api/dist/main.js');
const LANE = 'big';
const TENANT = 'acme';
const KEY = 'stop-test-key-1';
const lanesFile = { lanes: { big: { concurrency: 1 } } };

/** `n` dead letters of TENANT in the lane, as bullpen's worker leaves them: in the failed set. */
async function seedDead(redis: IORedis, prefix: string, n: number): Promise<string[]> {
  const queue = new Queue(LANE, { connection: redis, prefix: lanePrefix(prefix, LANE) });
  try {
    const jobs = await queue.addBulk(Array.from({ length: n }, (_, i) => ({ name: 'noop', data: wrapJobData({ i }, { v: 1, tenant: TENANT }) })));
    const ids = jobs.map((job) => String(job.id));
    await redis.del(laneBacklogKeys(prefix, LANE).wait);
    // One failure time each, so that every batch of the walk holds exactly its 200.
    const now = Date.now();
    await redis.zadd(laneStateKeys(prefix, LANE).failed, ...ids.flatMap((id, i) => [now - i, id]));
    return ids;
  } finally {
    await queue.close();
  }
}

const claims = async (redis: IORedis, prefix: string) => (await redis.keys(`${prefix}:*claim*`)).length;

describe('dead-letter redrives and purges when the API stops', () => {
  let redis: IORedis;
  let prefix: string;

  beforeEach(() => {
    prefix = testPrefix('stop');
    redis = new IORedis(redisUrl(), { maxRetriesPerRequest: 3 });
  });
  afterEach(async () => {
    redis.disconnect();
    await cleanupPrefix(prefix);
  });

  for (const action of ['redrive', 'purge'] as const) {
    it(`ends a ${action} under way between two batches when the API stops, answering api_stopping with the results so far and holding no claim`, async () => {
      const config = testConfig({ lanesFile, prefix, env: { API_KEYS: `${TENANT}:${KEY}` } });
      const ids = await seedDead(redis, prefix, 6);
      const lanes = new LaneRegistry(config, redis, createLogger('api', 'error'));
      let deadLetters: DeadLetters | undefined;
      let stopping: Promise<number> | undefined;
      // The API stops while the second batch waits for its room.
      class StopAtSecondBatch extends JobsInFlight {
        private entered = 0;
        override enter(jobs: number): Promise<void> {
          this.entered += 1;
          if (this.entered === 2) stopping = deadLetters?.stop();
          return super.enter(jobs);
        }
      }
      deadLetters = new DeadLetters({ config, redis, guard: new RedisGuard(redis), lanes, inFlight: new StopAtSecondBatch(1000, 0) }, { batchSize: 2 });
      try {
        const refusal = await (action === 'redrive' ? deadLetters.redrive(LANE, TENANT) : deadLetters.purge(LANE, TENANT)).then(
          () => undefined,
          (err: unknown) => err,
        );
        expect(refusal).toBeInstanceOf(ProblemError);
        const problem = (refusal as ProblemError).toProblem();
        expect(problem).toMatchObject({ code: 'api_stopping', status: 503 });
        expect((refusal as ProblemError).options.headers).toEqual({ 'Retry-After': '2' });
        // Newest first: the first batch is the first two seeded.
        expect(problem.results).toEqual(ids.slice(0, 2).map((id) => ({ id, status: action === 'redrive' ? 'redriven' : 'purged' })));
        expect(problem.detail).toMatch(/the others were not touched/);
        expect(await stopping).toBe(1);
        expect(await redis.zrange(laneStateKeys(prefix, LANE).failed, 0, -1)).toEqual(expect.arrayContaining(ids.slice(2)));
        expect(await redis.zcard(laneStateKeys(prefix, LANE).failed)).toBe(4);
        expect(await claims(redis, prefix)).toBe(0);
        // A stopped API takes no new one.
        await expect(deadLetters.redrive(LANE, TENANT)).rejects.toMatchObject({ code: 'api_stopping' });
      } finally {
        await lanes.close();
      }
    });
  }

  it('redrives each dead letter once when a redrive of all ended by stop is sent again with its failedBefore, though the jobs it redrove have died again', async () => {
    const config = testConfig({ lanesFile, prefix, env: { API_KEYS: `${TENANT}:${KEY}` } });
    const ids = await seedDead(redis, prefix, 6);
    const failedKey = laneStateKeys(prefix, LANE).failed;
    const lanes = new LaneRegistry(config, redis, createLogger('api', 'error'));
    // A worker that fails every job it takes, as the lane's did: each job redriven dies again.
    const connection = new IORedis(redisUrl(), { maxRetriesPerRequest: null });
    const worker = new Worker(
      LANE,
      async () => {
        throw new UnrecoverableError('still broken');
      },
      { connection, prefix: lanePrefix(prefix, LANE) },
    );
    worker.on('error', () => undefined);
    let first: DeadLetters | undefined;
    class StopAtSecondBatch extends JobsInFlight {
      private entered = 0;
      override enter(jobs: number): Promise<void> {
        this.entered += 1;
        if (this.entered === 2) void first?.stop();
        return super.enter(jobs);
      }
    }
    try {
      first = new DeadLetters({ config, redis, guard: new RedisGuard(redis), lanes, inFlight: new StopAtSecondBatch(1000, 0) }, { batchSize: 2 });
      const refusal = await first.redrive(LANE, TENANT).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(refusal).toBeInstanceOf(ProblemError);
      const problem = (refusal as ProblemError).toProblem();
      expect(problem).toMatchObject({ code: 'api_stopping', results: ids.slice(0, 2).map((id) => ({ id, status: 'redriven' })) });
      const { failedBefore } = problem;
      expect(typeof failedBefore).toBe('number');
      expect(problem.detail).toContain(`Send it again with failedBefore ${failedBefore} to redrive the rest.`);
      // Both redriven jobs have died again, and are dead letters once more.
      await waitUntil(async () => (await redis.zcard(failedKey)) === ids.length, { what: 'the redriven jobs to die again' });

      // The restarted API, sent the same call with the bound the first answered.
      const second = new DeadLetters({ config, redis, guard: new RedisGuard(redis), lanes }, { batchSize: 2 });
      const rest = await second.redrive(LANE, TENANT, undefined, failedBefore);
      expect(rest).toMatchObject({ redriven: ids.length - 2, notFound: 0, notDead: 0, claimed: 0, failedBefore });
      expect(rest.results).toEqual(ids.slice(2).map((id) => ({ id, status: 'redriven' })));
      // Each dead letter redriven once: the two from the first call are dead again, not back at work.
      const all = [...(problem.results ?? []), ...rest.results].map((r) => r.id);
      expect([...all].sort()).toEqual([...ids].sort());
      expect(await redis.zscore(failedKey, ids[0] as string)).not.toBeNull();
      expect(await redis.zscore(failedKey, ids[1] as string)).not.toBeNull();
    } finally {
      await worker.close();
      connection.disconnect();
      await lanes.close();
    }
  });

  describe('in the API process', () => {
    let dir: string;
    let child: ChildProcess | undefined;
    let proxy: { url: string; close(): Promise<void> } | undefined;

    beforeEach(() => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-stop-'));
    });
    afterEach(async () => {
      if (child && child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child?.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }
      child = undefined;
      await proxy?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    async function startApi(redisUrlForApi: string): Promise<{ url: string; exit: Promise<number | null>; log: { text: string } }> {
      const port = await freePort();
      const lanes = path.join(dir, 'lanes.json');
      writeFileSync(lanes, JSON.stringify(lanesFile));
      const log = { text: '' };
      const started = spawn(process.execPath, [MAIN], {
        env: {
          PATH: process.env.PATH ?? '',
          REDIS_URL: redisUrlForApi,
          BULLPEN_PREFIX: prefix,
          LANES_FILE: lanes,
          PORT: String(port),
          HOST: '127.0.0.1',
          API_KEYS: `${TENANT}:${KEY}`,
          LOG_LEVEL: 'info',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child = started;
      started.stdout?.on('data', (d: Buffer) => (log.text += d.toString()));
      started.stderr?.on('data', (d: Buffer) => (log.text += d.toString()));
      const exit = new Promise<number | null>((resolve) => started.once('exit', (code) => resolve(code)));
      const url = `http://127.0.0.1:${port}`;
      await waitUntil(async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.ok, { what: 'the API' });
      return { url, exit, log };
    }

    const redrive = (url: string) =>
      fetch(`${url}/v1/lanes/${LANE}/dead/redrive`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        body: '{}',
      });

    it('answers a redrive under way at SIGTERM with its results so far, exits holding no claim, and a redrive after the restart takes every dead letter left', async () => {
      const ids = await seedDead(redis, prefix, 4000);
      // Each round trip to Redis is slow, so that the redrive's twenty batches take longer than the server's 5 s grace.
      proxy = await startLatencyProxy(new URL(redisUrl()), 25);
      const first = await startApi(proxy.url);
      const answer = redrive(first.url);
      const failedKey = laneStateKeys(prefix, LANE).failed;
      await waitUntil(async () => (await redis.zcard(failedKey)) < ids.length, { what: 'the redrive to be under way', intervalMs: 5 });
      const signalled = Date.now();
      child?.kill('SIGTERM');

      const reply = await answer;
      expect(reply.status).toBe(503);
      const body = (await reply.json()) as { code: string; results: { id: string; status: string }[] };
      expect(body.code).toBe('api_stopping');
      expect(reply.headers.get('retry-after')).toBe('2');
      // The answer closed its connection: the same call sent again does not reach the stopping API.
      expect(reply.headers.get('connection')).toBe('close');
      await expect(redrive(first.url)).rejects.toMatchObject({ cause: { code: 'ECONNREFUSED' } });
      expect(await first.exit).toBe(0);
      // Nothing kept it waiting for the HTTP server's 5 s grace.
      expect(Date.now() - signalled).toBeLessThan(4000);
      expect(first.log.text).toMatch(/ended dead-letter redrives and purges between batches/);
      // Whole batches only, each one's claims given back; what it did is what it said.
      expect(body.results.length % 200).toBe(0);
      expect(body.results.every((r) => r.status === 'redriven')).toBe(true);
      expect(await claims(redis, prefix)).toBe(0);
      expect(await redis.zcard(failedKey)).toBe(ids.length - body.results.length);

      const second = await startApi(redisUrl());
      const again = await redrive(second.url);
      expect(again.status).toBe(200);
      expect(await again.json()).toMatchObject({ redriven: ids.length - body.results.length, claimed: 0, notDead: 0, notFound: 0 });
      expect(await redis.zcard(failedKey)).toBe(0);
    }, 60_000);
  });
});
