// Redis comes back a little behind what it acknowledged: restarted from an older RDB snapshot (as
// after an RDB restore, a crash with the append-only file fsynced every second, or the promotion
// of a replica that lagged). The exporter had already served totals that include events the
// restored Redis no longer holds. Its served counters and histograms must never step down
// (Prometheus would read a counter reset and count the lane's whole total again), events after
// the restore must be counted on top, Prometheus's increase() must see only those, and the totals
// must be written back so that a restarted exporter serves them too. The API, a worker and the
// exporter run as processes against a real Redis, scraped by a real Prometheus.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import IORedis from 'ioredis';
import {
  spawnApi,
  spawnExporter,
  spawnWorkerApp,
  startPrometheus,
  total,
  type AppProcess,
  type PrometheusProcess,
  type Sample,
} from './support/prometheus';
import { removeDir, startRedis, type RedisProcess } from './support/redis-server';
import { testPrefix, waitUntil } from './support/wait';

jest.setTimeout(150_000);

const LANE = 'alpha';
const TENANT_KEY = 'acme-key-0001';
const LANES = {
  lanes: {
    [LANE]: {
      concurrency: 16,
      maxQueueSize: 100_000,
      retention: { completed: { ageSeconds: 3600, count: 1_000_000 } },
    },
  },
};
/** Jobs completed before the snapshot, after it (lost by the restore), and after the restore. */
const BEFORE = 300;
const LOST = 100;
const AFTER = 20;
/** Seconds Prometheus scrapes the total before the restore, at the start of the increase() window. */
const PLATEAU_S = 10;
const COMPLETED = `bullpen_jobs_completed_total{lane="${LANE}"}`;

/** Samples of counters and histograms: the ones whose value may never step down. */
function monotonic(samples: readonly Sample[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples) {
    if (!/(_total|_count|_sum|_bucket)$/.test(s.name)) continue;
    out.set(`${s.name}${JSON.stringify(s.labels)}`, s.value);
  }
  return out;
}

describe('the exporter when Redis comes back with older data', () => {
  const prefix = testPrefix('rollback');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-rollback-'));
  const lanesFile = path.join(dir, 'lanes.json');
  writeFileSync(lanesFile, JSON.stringify(LANES));
  let redisServer: RedisProcess;
  let redis: IORedis;
  let api: AppProcess;
  let exporter: AppProcess;
  let prometheus: PrometheusProcess | undefined;
  const apps: AppProcess[] = [];
  let env: Record<string, string>;

  beforeAll(async () => {
    redisServer = await startRedis();
    redis = new IORedis(redisServer.url, { maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined); // the restart is expected
    env = { REDIS_URL: redisServer.url, BULLPEN_PREFIX: prefix, LANES_FILE: lanesFile, API_KEYS: `acme:${TENANT_KEY}` };
    const starting = [spawnApi(env), spawnExporter(env), spawnWorkerApp({ ...env, WORKER_ID: 'rollback-1' })].map((p) =>
      p.then((app) => (apps.push(app), app)),
    );
    const settled = await Promise.allSettled(starting);
    for (const s of settled) if (s.status === 'rejected') throw s.reason;
    [api, exporter] = settled.map((s) => (s as PromiseFulfilledResult<AppProcess>).value) as [AppProcess, AppProcess];
    prometheus = await startPrometheus({ jobs: [{ job: 'bullpen-exporter', targets: [`127.0.0.1:${exporter.port}`] }], ruleFiles: [] });
  });

  afterAll(async () => {
    await Promise.all(apps.map((app) => app.kill('SIGKILL')));
    await prometheus?.stop();
    redis?.disconnect();
    await redisServer?.stop();
    if (redisServer) removeDir(redisServer.dir);
    rmSync(dir, { recursive: true, force: true });
  });

  /** Submits `n` noop jobs over REST, retrying a bulk the API refuses while Redis comes back. */
  const submit = async (n: number) => {
    for (let left = n; left > 0; ) {
      const k = Math.min(500, left);
      await waitUntil(
        async () => {
          const res = await fetch(`${api.url}/v1/lanes/${LANE}/jobs/bulk`, {
            method: 'POST',
            headers: { authorization: `Bearer ${TENANT_KEY}`, 'content-type': 'application/json' },
            body: JSON.stringify({ jobs: Array.from({ length: k }, () => ({ name: 'noop' })) }),
          });
          return res.status === 200 || res.status === 201;
        },
        { timeoutMs: 30_000, intervalMs: 200, what: 'the API to take a bulk of jobs' },
      );
      left -= k;
    }
  };
  const completedInRedis = () => redis.zcard(`${prefix}:{${LANE}}:${LANE}:completed`);
  const served = async (a: AppProcess) => total(await a.samples(), 'bullpen_jobs_completed_total', { lane: LANE });
  const inPrometheus = async (expr: string) => (await (prometheus as PrometheusProcess).vector(expr))[0]?.value;

  it('keeps every served counter and histogram monotonic and counts the events after the restore on top', async () => {
    // Every served counter and histogram sample, watched for a step down throughout.
    const decreases: string[] = [];
    let last = new Map<string, number>();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const now = monotonic(await exporter.samples().catch(() => []));
        for (const [series, value] of now) {
          const before = last.get(series);
          if (before !== undefined && value < before) decreases.push(`${series}: ${before} -> ${value}`);
        }
        if (now.size > 0) last = now;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();

    try {
      await submit(BEFORE);
      await waitUntil(async () => (await served(exporter)) === BEFORE && (await completedInRedis()) === BEFORE, {
        timeoutMs: 30_000,
        what: `the exporter to count ${BEFORE} completed jobs`,
      });
      await redis.save(); // the point Redis will come back to
      await submit(LOST);
      await waitUntil(async () => (await served(exporter)) === BEFORE + LOST, {
        timeoutMs: 30_000,
        what: `the exporter to count ${BEFORE + LOST} completed jobs`,
      });
      // Prometheus has scraped the total before Redis goes back for some seconds: the window below
      // starts within them, long enough that increase()'s extrapolation to its edges adds little.
      await waitUntil(
        async () =>
          (await inPrometheus(`min_over_time(${COMPLETED}[${PLATEAU_S}s])`)) === BEFORE + LOST &&
          ((await inPrometheus(`count_over_time(${COMPLETED}[${PLATEAU_S}s])`)) ?? 0) >= PLATEAU_S - 1,
        { timeoutMs: 20_000, intervalMs: 200, what: 'Prometheus to scrape the total before the restore' },
      );
      const windowStart = Date.now() - PLATEAU_S * 1000;
      const histogramBefore = total(await exporter.samples(), 'bullpen_job_wait_duration_seconds_count', { lane: LANE });
      expect(histogramBefore).toBe(BEFORE + LOST);

      // Killed and started again on its directory: it loads the snapshot, without the last jobs.
      await redisServer.restart();
      await waitUntil(async () => (await completedInRedis()) === BEFORE, { timeoutMs: 15_000, what: 'Redis to come back from the snapshot' });

      await submit(AFTER);
      await waitUntil(async () => (await completedInRedis()) === BEFORE + AFTER, {
        timeoutMs: 30_000,
        what: 'the jobs after the restore to complete',
      });
      // A job's completion is counted from its own event; its wait time comes with the worker's
      // next flush of completed attempts, which may be read in a later batch.
      const waited = async () => total(await exporter.samples(), 'bullpen_job_wait_duration_seconds_count', { lane: LANE });
      await waitUntil(async () => (await served(exporter)) === BEFORE + LOST + AFTER && (await waited()) === BEFORE + LOST + AFTER, {
        timeoutMs: 15_000,
        what: 'the exporter to count the jobs after the restore on top of what it served',
      }).catch(() => undefined);
      const samples = await exporter.samples();
      expect({
        completed: total(samples, 'bullpen_jobs_completed_total', { lane: LANE }),
        waitCount: total(samples, 'bullpen_job_wait_duration_seconds_count', { lane: LANE }),
        conflicts: total(samples, 'bullpen_exporter_commit_conflicts_total'),
        lost: total(samples, 'bullpen_exporter_events_lost_total'),
      }).toEqual({ completed: BEFORE + LOST + AFTER, waitCount: BEFORE + LOST + AFTER, conflicts: 0, lost: 0 });

      // Prometheus: no reset, and increase() over a window from before the restore sees only the
      // jobs after it (up to its extrapolation to the window's edges: a few percent).
      await waitUntil(async () => (await inPrometheus(COMPLETED)) === BEFORE + LOST + AFTER, {
        timeoutMs: 15_000,
        what: 'Prometheus to scrape the total after the restore',
      });
      const window = `${Math.floor((Date.now() - windowStart) / 1000)}s`;
      const resets = await inPrometheus(`resets(${COMPLETED}[${window}])`);
      const increase = (await inPrometheus(`increase(${COMPLETED}[${window}])`)) as number;
      const countResets = await inPrometheus(`sum(resets(bullpen_job_wait_duration_seconds_count{lane="${LANE}"}[${window}]))`);
      process.stdout.write(`redis rollback: increase(${COMPLETED}[${window}]) = ${increase}, true count ${AFTER}\n`);
      expect({ resets, countResets }).toEqual({ resets: 0, countResets: 0 });
      expect(increase).toBeGreaterThanOrEqual(AFTER);
      expect(increase).toBeLessThan(AFTER * 1.25);
    } finally {
      watching = false;
      await watcher;
    }
    expect(decreases).toEqual([]);

    // Said as what happened, not as a recreated stream or another exporter's commit.
    const messages = exporter.logs().map((l) => String(l.msg));
    expect(messages).toContain("Redis lost the exporter's last commits (restored from an older snapshot or a failover): its totals are kept");
    expect(messages.filter((m) => /recreated|another exporter/.test(m))).toEqual([]);

    // Written back: an exporter started afresh serves the same totals.
    await exporter.kill('SIGTERM');
    const again = await spawnExporter(env);
    apps.push(again);
    expect(await served(again)).toBe(BEFORE + LOST + AFTER);
    expect(total(await again.samples(), 'bullpen_job_wait_duration_seconds_count', { lane: LANE })).toBe(BEFORE + LOST + AFTER);
  });
});
