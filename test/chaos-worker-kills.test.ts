// Chaos: 10,000 jobs across lanes while worker processes are SIGKILLed and replaced at random.
// Every job must complete; duplicates (at-least-once delivery) are counted and reported.
import path from 'node:path';
import { Queue } from 'bullmq';
import IORedis from 'ioredis';
import { laneJobOptions, type LanePolicy, lanePrefix, wrapJobData } from '@bullpen/core';
import { spawnWorker, writeLanesFile, type WorkerProcess } from './fixtures/worker-process';
import { cleanupPrefix, testConfig } from './support/config';
import { redisUrl, testPrefix, waitUntil } from './support/wait';

const HANDLERS = path.resolve(__dirname, 'fixtures/chaos-handlers');
const JOBS = 10_000;
const MIN_KILLS = Number(process.env.CHAOS_MIN_KILLS ?? 10);

describe('chaos: workers killed mid-run', () => {
  const prefix = testPrefix('chaos');
  const key = `${prefix}:chaos`;
  // Workers die here for reasons that have nothing to do with the jobs, so the lanes allow a job
  // to lose its worker three times (maxStalls) before it fails as stalled: with the default of one,
  // a job reclaimed after one kill and caught running in the next failed (2 of 10,000 in one run).
  const lanes = {
    maxHandlersPerProcess: 24,
    lanes: {
      chaos_a: { concurrency: 8, lockDurationMs: 1000, attempts: 5, maxStalls: 3 },
      chaos_b: { concurrency: 4, lockDurationMs: 1000, attempts: 5, maxStalls: 3 },
      chaos_c: { concurrency: 12, lockDurationMs: 1000, attempts: 5, maxStalls: 3 },
    },
  };
  const laneNames = Object.keys(lanes.lanes);
  const workers = new Set<WorkerProcess>();
  let redis: IORedis;
  let lanesFile: ReturnType<typeof writeLanesFile>;

  beforeAll(() => {
    redis = new IORedis(redisUrl());
    lanesFile = writeLanesFile(lanes);
  });
  afterAll(async () => {
    await Promise.all([...workers].map((w) => w.stop('SIGKILL')));
    lanesFile.cleanup();
    redis.disconnect();
    await cleanupPrefix(prefix);
  });

  const start = (n: number): WorkerProcess => {
    const worker = spawnWorker({
      REDIS_URL: redisUrl(),
      BULLPEN_PREFIX: prefix,
      LANES_FILE: lanesFile.file,
      HANDLERS_DIR: HANDLERS,
      WORKER_ID: `chaos-${n}`,
    });
    workers.add(worker);
    return worker;
  };

  it('completes every job through at least ten SIGKILLs', async () => {
    const config = testConfig({ lanesFile: lanes, prefix });
    const queues = laneNames.map((lane) => new Queue(lane, { connection: redis, prefix: lanePrefix(prefix, lane) }));
    for (let i = 0; i < JOBS; i += 1000) {
      await Promise.all(
        queues.map((q, li) => {
          const policy = config.lanes[laneNames[li] ?? ''] as LanePolicy;
          const batch = Array.from({ length: 1000 }, (_, j) => ({
            name: 'chaos',
            data: wrapJobData({ ms: 20 + ((i + j) % 40), key }, { v: 1, tenant: 'acme' }),
            opts: laneJobOptions(policy),
          })).filter((_, j) => (i + j) % laneNames.length === li);
          return q.addBulk(batch);
        }),
      );
    }
    const total = (await Promise.all(queues.map((q) => q.getJobCountByTypes('wait', 'delayed', 'prioritized')))).reduce((a, b) => a + b, 0);
    expect(total).toBe(JOBS);

    let started = 0;
    await Promise.all([start(started++), start(started++)].map((w) => w.started()));
    let kills = 0;
    const deadline = Date.now() + 150_000;
    while (kills < MIN_KILLS || (await redis.scard(`${key}:done`)) < JOBS) {
      if (Date.now() > deadline) throw new Error(`chaos run did not finish: ${kills} kills, ${await redis.scard(`${key}:done`)} done`);
      // Let work happen, then kill a random worker mid-job and start a replacement.
      const done = await redis.scard(`${key}:done`);
      const counts = JSON.stringify(await Promise.all(queues.map((q) => q.getJobCounts())));
      await waitUntil(async () => (await redis.scard(`${key}:done`)) > done + 100 || (await redis.scard(`${key}:done`)) >= JOBS, {
        timeoutMs: 30_000,
        what: `progress between kills (kills ${kills}, done ${done}, counts ${counts})`,
      });
      if (kills < MIN_KILLS) {
        const victims = [...workers];
        const victim = victims[Math.floor(Math.random() * victims.length)];
        if (victim) {
          workers.delete(victim);
          await victim.stop('SIGKILL');
          kills += 1;
          await start(started++).started();
        }
      }
    }

    const runs = await redis.hvals(`${key}:runs`);
    const totalRuns = runs.reduce((a, b) => a + Number(b), 0);
    const failed = (await Promise.all(queues.map((q) => q.getFailedCount()))).reduce((a, b) => a + b, 0);
    const left = (await Promise.all(queues.map((q) => q.getJobCountByTypes('wait', 'delayed', 'prioritized', 'active')))).reduce((a, b) => a + b, 0);
    process.stdout.write(`chaos: ${JOBS} jobs, ${kills} kills, ${totalRuns} handler runs, ${totalRuns - JOBS} duplicates, ${failed} failed\n`);
    expect(kills).toBeGreaterThanOrEqual(MIN_KILLS);
    expect(await redis.scard(`${key}:done`)).toBe(JOBS);
    expect(runs.length).toBe(JOBS);
    expect(failed).toBe(0);
    expect(left).toBe(0);
    await Promise.all(queues.map((q) => q.close()));
  }, 200_000);
});
