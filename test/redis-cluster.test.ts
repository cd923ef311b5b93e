// bullpen on a real Redis Cluster of three primaries: the API, two worker processes and the
// exporter run as processes configured with REDIS_CLUSTER_NODES. Each lane's keys share one hash
// slot and the lanes spread over the primaries; jobs in several lanes complete, admission control
// and the retry budget hold, the exporter's totals equal ground truth, and it reads Redis memory
// from each primary.
import type { Job, Queue } from 'bullmq';
import {
  createLaneQueue,
  createRedis,
  laneEventsKey,
  loadConfig,
  serverOfKey,
  waitForReplicas,
  type BullpenConfig,
  type RedisClient,
  type RetryBudgetPolicy,
} from '@bullpen/core';
import { writeLanesFile } from './fixtures/worker-process';
import { startRedisCluster, type RedisClusterProcess } from './support/redis-cluster';
import { spawnApi, spawnExporter, spawnWorkerApp, total, type AppProcess } from './support/prometheus';
import { testPrefix, waitUntil } from './support/wait';

const KEY = 'cluster-key';
const budget: RetryBudgetPolicy = { ratio: 0.1, minRetriesPerSecond: 1, windowSeconds: 60, onExhausted: 'fail' };
const LANES = {
  alpha: { concurrency: 10 },
  beta: { concurrency: 10 },
  gamma: { concurrency: 10 },
  flaky: { concurrency: 20, attempts: 5, backoff: { strategy: 'fixed', baseMs: 10, capMs: 1000 }, retryBudget: budget },
  capped: { concurrency: 5, maxQueueSize: 20 },
} as const;
type Lane = keyof typeof LANES;
const LANE_NAMES = Object.keys(LANES) as Lane[];
const PER_LANE = 200;
const FLAKY_JOBS = 300;
const CAP = LANES.capped.maxQueueSize;

describe('bullpen on a real 3-primary Redis Cluster', () => {
  const prefix = testPrefix('cluster');
  const lanesFile = writeLanesFile({ lanes: LANES });
  let cluster: RedisClusterProcess;
  let config: BullpenConfig;
  let redis: RedisClient;
  const queues = {} as Record<Lane, Queue>;
  const apps: AppProcess[] = [];
  let api: AppProcess;
  let exporter: AppProcess;
  /** Ground truth the exporter must reach: what the test made happen. */
  const truth = { completed: {} as Record<string, number>, rejected: 0, flakyAttempts: 0 };

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    const env = { REDIS_CLUSTER_NODES: cluster.nodesEnv, BULLPEN_PREFIX: prefix, LANES_FILE: lanesFile.file };
    config = loadConfig(env);
    redis = createRedis(config.redis, 'worker', 'bullpen:test');
    for (const lane of LANE_NAMES) queues[lane] = createLaneQueue(config, lane, redis);
    const started = await Promise.all([
      spawnApi({ ...env, API_KEYS: `acme:${KEY}` }),
      spawnExporter(env),
      spawnWorkerApp({ ...env, WORKER_ID: 'w1' }),
      spawnWorkerApp({ ...env, WORKER_ID: 'w2' }),
    ]);
    apps.push(...started);
    [api, exporter] = started;
  }, 90_000);

  afterAll(async () => {
    await Promise.all(apps.map((a) => a.kill('SIGKILL')));
    await Promise.all(Object.values(queues).map((q) => q.close()));
    redis?.disconnect();
    await cluster?.stop();
    lanesFile.cleanup();
  });

  const post = async (path: string, body?: unknown) => {
    const res = await fetch(`${api.url}/v1${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json().catch(() => ({}))) as Record<string, unknown> };
  };
  const bulk = async (lane: Lane, jobs: unknown[]) => {
    const res = await post(`/lanes/${lane}/jobs/bulk`, { jobs });
    return res.body as { created: number; rejected: number };
  };
  const counts = async (lane: Lane) => {
    const c = await queues[lane].getJobCounts('wait', 'delayed', 'prioritized', 'active', 'completed', 'failed');
    return { backlog: (c.wait ?? 0) + (c.delayed ?? 0) + (c.prioritized ?? 0), completed: c.completed ?? 0, failed: c.failed ?? 0 };
  };

  it('gives each lane its own slot and spreads the lanes over all three primaries', async () => {
    const owners = await Promise.all(LANE_NAMES.map((lane) => cluster.ownerOf(laneEventsKey(prefix, lane))));
    expect(new Set(owners).size).toBe(3);
    // BullMQ's own keys of a lane live on the lane's primary too: the queue's meta hash exists there.
    for (const [i, lane] of LANE_NAMES.entries()) {
      const node = cluster.nodes.find((n) => n.port === owners[i]);
      const direct = createRedis(node!.url, 'worker');
      try {
        await queues[lane].getJobCounts(); // touches the lane
        expect(await direct.exists(`${queues[lane].opts.prefix}:${lane}:meta`)).toBe(1);
      } finally {
        direct.disconnect();
      }
    }
  });

  it("sends a lane's WAIT to the primary that holds the lane (API_REDIS_WAIT_REPLICAS)", async () => {
    for (const lane of LANE_NAMES) {
      const key = laneEventsKey(prefix, lane);
      const server = serverOfKey(redis, key);
      expect(server?.options.port).toBe(await cluster.ownerOf(key));
      // Answered there, not MOVED elsewhere; with no replicas in this cluster none acknowledges.
      expect(await waitForReplicas(redis, key, 0, 100)).toBe(0);
    }
  });

  it('runs REST-submitted jobs in lanes on different primaries to completion', async () => {
    for (const lane of ['alpha', 'beta', 'gamma'] as const) {
      const res = await bulk(lane, Array.from({ length: PER_LANE }, () => ({ name: 'noop', data: {} })));
      expect(res).toMatchObject({ created: PER_LANE, rejected: 0 });
      const single = await post(`/lanes/${lane}/jobs`, { name: 'noop', data: {} });
      expect(single.status).toBe(201);
      truth.completed[lane] = PER_LANE + 1;
    }
    for (const lane of ['alpha', 'beta', 'gamma'] as const) {
      await waitUntil(async () => (await counts(lane)).completed === PER_LANE + 1, {
        timeoutMs: 60_000,
        intervalMs: 100,
        what: `every ${lane} job to complete`,
      });
    }
  });

  it('holds a lane to its maxQueueSize across concurrent single and bulk submissions', async () => {
    expect((await post('/lanes/capped/pause')).status).toBeLessThan(300);
    const first = await bulk('capped', Array.from({ length: 15 }, () => ({ name: 'noop', data: {} })));
    expect(first).toMatchObject({ created: 15, rejected: 0 });
    const singles = await Promise.all(Array.from({ length: 20 }, () => post('/lanes/capped/jobs', { name: 'noop', data: {} })));
    const accepted = singles.filter((r) => r.status === 201).length;
    const refused = singles.filter((r) => r.status === 429);
    expect(accepted).toBe(CAP - 15);
    expect(refused).toHaveLength(20 - accepted);
    expect(refused[0]?.body).toMatchObject({ code: 'queue_full' });
    expect((await counts('capped')).backlog).toBe(CAP);
    truth.rejected = refused.length;
    truth.completed.capped = CAP;
    expect((await post('/lanes/capped/resume')).status).toBeLessThan(300);
    await waitUntil(async () => (await counts('capped')).completed === CAP, { timeoutMs: 30_000, what: 'the capped lane to drain' });
  });

  it('keeps retries of jobs failing every call within one retry budget shared by both workers', async () => {
    const res = await bulk('flaky', Array.from({ length: FLAKY_JOBS }, () => ({ name: 'fail', data: { kind: 'retryable' } })));
    expect(res).toMatchObject({ created: FLAKY_JOBS });
    await waitUntil(async () => (await counts('flaky')).failed === FLAKY_JOBS, {
      timeoutMs: 60_000,
      intervalMs: 100,
      what: 'every flaky job to fail',
    });
    const failed: Job[] = await queues.flaky.getFailed(0, FLAKY_JOBS);
    const attempts = failed.reduce((sum, job) => sum + job.attemptsMade, 0);
    const bound = FLAKY_JOBS + Math.floor(budget.ratio * FLAKY_JOBS + budget.minRetriesPerSecond * budget.windowSeconds);
    process.stdout.write(`cluster retry budget: jobs=${FLAKY_JOBS} attempts=${attempts} bound=${bound} (without: ${FLAKY_JOBS * 5})\n`);
    expect(attempts).toBeGreaterThan(FLAKY_JOBS);
    expect(attempts).toBeLessThanOrEqual(bound);
    expect(failed.filter((j) => j.failedReason === 'retry_budget_exhausted').length).toBeGreaterThan(0);
    truth.flakyAttempts = attempts;
  });

  it("reports exporter totals equal to ground truth, read from every lane's stream on its own primary", async () => {
    const expected = () => ({
      completed: Object.fromEntries(LANE_NAMES.map((lane) => [lane, truth.completed[lane] ?? 0])),
      // Attempts of completed jobs travel in batches per lane, each to its lane's primary.
      attempts: Object.fromEntries(
        LANE_NAMES.map((lane) => [lane, lane === 'flaky' ? truth.flakyAttempts : (truth.completed[lane] ?? 0)]),
      ),
      failed: FLAKY_JOBS,
      rejected: truth.rejected,
    });
    const observed = async () => {
      const samples = await exporter.samples();
      return {
        completed: Object.fromEntries(LANE_NAMES.map((lane) => [lane, total(samples, 'bullpen_jobs_completed_total', { lane })])),
        attempts: Object.fromEntries(LANE_NAMES.map((lane) => [lane, total(samples, 'bullpen_job_attempts_total', { lane })])),
        failed: total(samples, 'bullpen_jobs_failed_total', { lane: 'flaky' }),
        rejected: total(samples, 'bullpen_jobs_rejected_total', { lane: 'capped' }),
      };
    };
    let last: unknown;
    await waitUntil(
      async () => {
        last = await observed();
        return JSON.stringify(last) === JSON.stringify(expected());
      },
      { timeoutMs: 30_000, intervalMs: 200, what: 'the exporter to catch up' },
    ).catch((err: Error) => {
      throw new Error(`${err.message}\nexpected ${JSON.stringify(expected())}\nobserved ${JSON.stringify(last)}`);
    });
    // Both workers were seen serving each lane, counted on the primaries their connections use.
    const samples = await exporter.samples();
    for (const lane of LANE_NAMES) expect(total(samples, 'bullpen_queue_workers', { lane })).toBe(2);
    // Redis memory is read from each primary and exported under its address.
    const primaries = cluster.nodes.map((n) => `127.0.0.1:${n.port}`).sort();
    for (const name of ['bullpen_redis_memory_used_bytes', 'bullpen_redis_memory_max_bytes', 'bullpen_redis_maxmemory_policy']) {
      const servers = samples.filter((s) => s.name === name).map((s) => s.labels.server);
      expect(`${name}: ${servers.sort().join(' ')}`).toBe(`${name}: ${primaries.join(' ')}`);
    }
    for (const server of primaries) expect(total(samples, 'bullpen_redis_memory_used_bytes', { server })).toBeGreaterThan(0);
  });

  it("refuses new jobs only in the lanes whose own primary is past the API's share of its memory", async () => {
    const [alphaOwner, betaOwner] = await Promise.all(['alpha', 'beta'].map((lane) => cluster.ownerOf(laneEventsKey(prefix, lane))));
    expect(betaOwner).not.toBe(alphaOwner);
    const node = cluster.nodes.find((n) => n.port === alphaOwner);
    const direct = createRedis(node!.url, 'worker');
    const submit = (lane: Lane) => post(`/lanes/${lane}/jobs`, { name: 'noop', data: {} });
    try {
      // alpha's primary at 95% of its maxmemory, past the default API_REDIS_MEMORY_LIMIT of 0.9.
      const used = Number(/^used_memory:(\d+)/m.exec(await direct.info('memory'))?.[1]);
      await direct.config('SET', 'maxmemory', String(Math.floor(used / 0.95)));
      const refused = await waitUntil(
        async () => {
          const reply = await submit('alpha');
          return reply.status === 503 ? reply : undefined;
        },
        { what: "the API to read alpha's primary as past the limit" },
      );
      expect(refused.body.code).toBe('redis_full');
      expect((await submit('beta')).status).toBe(201);
    } finally {
      await direct.config('SET', 'maxmemory', '0');
      direct.disconnect();
    }
    await waitUntil(async () => (await submit('alpha')).status === 201, { what: 'alpha to take jobs again' });
  });
});
