// The metrics pipeline proven end to end against a real Redis and a real Prometheus, with the
// real apps as processes: the API (jobs submitted over REST by two tenants), a worker running the
// built-in handlers, and the exporter. The workload has successes, retries, permanent failures,
// timeouts, exhausted retries, a retry budget that refuses every retry of one lane, admission
// rejections, and a stall: a worker SIGKILLed mid-job whose job BullMQ's stall check hands to the
// other worker. The exporter is SIGKILLed mid-run and restarted; its totals must equal the ground
// truth exactly (known from the payloads, cross-checked against the jobs' final states in Redis),
// Prometheus must see no counter reset, and every dashboard query and rule must evaluate.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { Queue } from 'bullmq';
import IORedis from 'ioredis';
import {
  catalogueNameOf,
  createLaneQueue,
  createRedis,
  exporterStateKey,
  laneEventsKey,
  metricsOf,
  type BullpenConfig,
  type ErrorClass,
} from '@bullpen/core';
import { testConfig } from './support/config';
import {
  declaredMetrics,
  namesIn,
  promtool,
  REPO_ROOT,
  spawnApi,
  spawnExporter,
  spawnWorkerApp,
  startPrometheus,
  total,
  type AppProcess,
  type PrometheusProcess,
  type Sample,
} from './support/prometheus';
import { freePort, removeDir, startRedis, type RedisProcess } from './support/redis-server';
import { testPrefix, waitUntil } from './support/wait';

jest.setTimeout(120_000);

type Kind = 'ok' | 'slow' | 'permanent' | 'flaky' | 'exhaust' | 'timeout';
const BACKOFF_MS = 25;
const backoff = { strategy: 'fixed', baseMs: BACKOFF_MS, capMs: BACKOFF_MS };
/** A small lock, so that the killed worker's job is reclaimed within seconds. */
const LOCK_MS = 1000;
const LANES = {
  // A budget that never runs out.
  alpha: { concurrency: 8, attempts: 3, lockDurationMs: LOCK_MS, backoff, retryBudget: { ratio: 10, minRetriesPerSecond: 100_000 } },
  // A budget of zero: every retry is refused and the job fails. (Deferred, a refused retry would
  // ask again when due and be refused again, so the jobs would never end and the number of
  // refusals would depend on timing: worker-retry-budget-defer.test.ts covers that action.)
  beta: {
    concurrency: 4,
    attempts: 2,
    lockDurationMs: LOCK_MS,
    maxQueueSize: 100,
    backoff,
    retryBudget: { ratio: 0, minRetriesPerSecond: 0, onExhausted: 'fail' },
  },
} as const;
type Lane = keyof typeof LANES;
const LANE_NAMES = Object.keys(LANES) as Lane[];
/** Jobs per phase, per lane and kind. */
const PLAN: Record<Lane, Record<Kind, number>> = {
  alpha: { ok: 60, slow: 10, permanent: 8, flaky: 12, exhaust: 5, timeout: 5 },
  beta: { ok: 40, slow: 4, permanent: 4, flaky: 6, exhaust: 4, timeout: 2 },
};
const PHASES = 2;
const TIMEOUT_MS = 100;
/** Submissions over beta's maxQueueSize, refused with 429 at admission. */
const OVERFLOW = 7;
/** Both submit over REST; the exporter is configured with acme only, so globex counts as `other`. */
const TENANTS = [
  { tenant: 'acme', key: 'acme-key-0001', label: 'acme' },
  { tenant: 'globex', key: 'globex-key-0002', label: 'other' },
] as const;
const JOB_NAMES = ['noop', 'sleep', 'fail', 'http'] as const;
const FAILURE: Partial<Record<Kind, { errorClass: ErrorClass; retryable: boolean }>> = {
  permanent: { errorClass: 'validation', retryable: false },
  flaky: { errorClass: 'handler', retryable: true },
  exhaust: { errorClass: 'http_5xx', retryable: true },
  timeout: { errorClass: 'timeout', retryable: true },
};

/** The REST submission that makes a built-in handler behave as `kind`. */
function submission(kind: Kind, failingUrl: string): { name: (typeof JOB_NAMES)[number]; data?: unknown; timeoutMs?: number } {
  switch (kind) {
    case 'ok':
      return { name: 'noop' };
    case 'slow':
      return { name: 'sleep', data: { ms: 40 } };
    case 'permanent':
      return { name: 'sleep', data: { ms: -1 } }; // the payload check fails: validation
    case 'flaky':
      return { name: 'fail', data: { kind: 'retryable', succeedOnAttempt: 2 } };
    case 'exhaust':
      return { name: 'http', data: { url: failingUrl } }; // answers 500 every time
    case 'timeout':
      return { name: 'sleep', data: { ms: 60_000 }, timeoutMs: TIMEOUT_MS };
  }
}

interface Truth {
  enqueued: number;
  completed: number;
  failed: Partial<Record<ErrorClass, number>>;
  attemptsFailed: Partial<Record<ErrorClass, number>>;
  retried: Partial<Record<ErrorClass, number>>;
  attempts: number;
  attemptsByTenant: Record<string, number>;
  attemptsByJobName: Record<string, number>;
  stalled: number;
  budget: { defer: number; fail: number };
  rejected: number;
}

function emptyTruth(): Truth {
  return {
    enqueued: 0,
    completed: 0,
    failed: {},
    attemptsFailed: {},
    retried: {},
    attempts: 0,
    attemptsByTenant: { acme: 0, other: 0 },
    attemptsByJobName: Object.fromEntries(JOB_NAMES.map((n) => [n, 0])),
    stalled: 0,
    budget: { defer: 0, fail: 0 },
    rejected: 0,
  };
}
const add = (map: Partial<Record<ErrorClass, number>>, key: ErrorClass, n: number) => (map[key] = (map[key] ?? 0) + n);

/** What one job contributes to the ground truth, from its kind and its lane's policy; its final state. */
function account(truth: Truth, lane: Lane, kind: Kind, tenantLabel: string, name: string): 'completed' | 'failed' {
  const attempts = LANES[lane].attempts;
  const refusing = LANES[lane].retryBudget.ratio === 0;
  const failure = FAILURE[kind];
  let made = 1;
  let retries = 0;
  truth.enqueued += 1;
  if (!failure) truth.completed += 1;
  else if (!failure.retryable || refusing) {
    // A retryable failure on a lane whose budget refuses every retry fails the job at once,
    // with the class of its failure.
    if (failure.retryable) truth.budget.fail += 1;
    add(truth.failed, failure.errorClass, 1);
    add(truth.attemptsFailed, failure.errorClass, 1);
  } else if (kind === 'flaky') {
    made = 2;
    retries = 1;
    truth.completed += 1;
    add(truth.attemptsFailed, failure.errorClass, 1);
  } else {
    made = attempts;
    retries = attempts - 1;
    add(truth.failed, failure.errorClass, 1);
    add(truth.attemptsFailed, failure.errorClass, attempts);
  }
  if (failure && retries > 0) add(truth.retried, failure.errorClass, retries);
  truth.attempts += made;
  truth.attemptsByTenant[tenantLabel] = (truth.attemptsByTenant[tenantLabel] ?? 0) + made;
  truth.attemptsByJobName[name] = (truth.attemptsByJobName[name] ?? 0) + made;
  return failure && (!failure.retryable || refusing || kind !== 'flaky') ? 'failed' : 'completed';
}

/** The exporter's totals for a lane, in the shape of the ground truth. */
function exported(samples: readonly Sample[], lane: Lane): Truth {
  const byClass = (name: string) => {
    const out: Partial<Record<ErrorClass, number>> = {};
    for (const s of samples) {
      if (s.name === name && s.labels.lane === lane && s.value !== 0) out[s.labels.error_class as ErrorClass] = s.value;
    }
    return out;
  };
  return {
    enqueued: total(samples, 'bullpen_jobs_enqueued_total', { lane }),
    completed: total(samples, 'bullpen_jobs_completed_total', { lane }),
    failed: byClass('bullpen_jobs_failed_total'),
    attemptsFailed: byClass('bullpen_job_attempts_failed_total'),
    retried: byClass('bullpen_jobs_retried_total'),
    attempts: total(samples, 'bullpen_job_attempts_total', { lane }),
    attemptsByTenant: {
      acme: total(samples, 'bullpen_job_attempts_total', { lane, tenant: 'acme' }),
      other: total(samples, 'bullpen_job_attempts_total', { lane, tenant: 'other' }),
    },
    attemptsByJobName: Object.fromEntries(JOB_NAMES.map((n) => [n, total(samples, 'bullpen_job_attempts_total', { lane, job_name: n })])),
    stalled: total(samples, 'bullpen_jobs_stalled_total', { lane }),
    budget: {
      defer: total(samples, 'bullpen_retry_budget_exhausted_total', { lane, action: 'defer' }),
      fail: total(samples, 'bullpen_retry_budget_exhausted_total', { lane, action: 'fail' }),
    },
    rejected: total(samples, 'bullpen_jobs_rejected_total', { lane }),
  };
}

describe('the metrics pipeline against a real Prometheus', () => {
  const prefix = testPrefix('mp');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-pipeline-'));
  const lanesFile = path.join(dir, 'lanes.json');
  writeFileSync(lanesFile, JSON.stringify({ lanes: LANES }));
  // A Redis of its own, run as bullpen should be: with a memory limit under noeviction (the Redis
  // memory panel and alerts need a limit to have a ratio).
  let own: RedisProcess;
  let base: Record<string, string>;
  let exporterEnv: Record<string, string>;
  let apiEnv: Record<string, string>;
  let config: BullpenConfig;
  let redis: IORedis;
  let exporterPort: number;
  let apiPort: number;
  let workerPort: number;
  let exporter: AppProcess;
  let api: AppProcess;
  let worker: AppProcess | undefined;
  let doomed: AppProcess | undefined;
  let prometheus: PrometheusProcess;
  let failing: http.Server;
  let failingUrl: string;
  const connections: IORedis[] = [];
  const queues: Partial<Record<Lane, Queue>> = {};
  const truth: Record<Lane, Truth> = { alpha: emptyTruth(), beta: emptyTruth() };
  /** Every job submitted, with the final state its payload leads to. */
  const expected = new Map<string, { lane: Lane; state: 'completed' | 'failed' }>();
  let killedWithUnread = 0;

  beforeAll(async () => {
    own = await startRedis(['--maxmemory', '1gb', '--maxmemory-policy', 'noeviction']);
    // The failing server listens on loopback, which the http handler calls only when allowed.
    base = { REDIS_URL: own.url, BULLPEN_PREFIX: prefix, LANES_FILE: lanesFile, HTTP_HANDLER_ALLOWED_HOSTS: '127.0.0.1' };
    // A short leadership lease: the exporter SIGKILLed below cannot release it, and its restart
    // (another pid) takes the lead only once it has expired.
    exporterEnv = { ...base, API_KEYS: `acme:${TENANTS[0].key}`, EXPORTER_LEADER_LEASE_MS: '1000' };
    apiEnv = { ...base, API_KEYS: TENANTS.map((t) => `${t.tenant}:${t.key}`).join(',') };
    config = testConfig({ env: base });
    redis = new IORedis(own.url, { maxRetriesPerRequest: 3 });
    failing = http.createServer((_req, res) => res.writeHead(500, { 'content-type': 'text/plain' }).end('broken'));
    await new Promise<void>((resolve) => failing.listen(0, '127.0.0.1', resolve));
    failingUrl = `http://127.0.0.1:${(failing.address() as AddressInfo).port}/always-500`;
    [exporterPort, apiPort, workerPort] = await Promise.all([freePort(), freePort(), freePort()]);
    let started: [AppProcess, AppProcess, AppProcess];
    [started, prometheus] = await Promise.all([
      Promise.all([
        spawnExporter(exporterEnv, exporterPort),
        spawnApi(apiEnv, apiPort),
        // Serves alpha only, and dies holding a job.
        spawnWorkerApp({ ...base, WORKER_ID: 'doomed', WORKER_LANES: 'alpha' }),
      ]),
      startPrometheus({
        jobs: [
          { job: 'bullpen-exporter', targets: [`127.0.0.1:${exporterPort}`] },
          { job: 'bullpen-api', targets: [`127.0.0.1:${apiPort}`] },
          { job: 'bullpen-worker', targets: [`127.0.0.1:${workerPort}`] },
        ],
      }),
    ]);
    [exporter, api, doomed] = started;
    for (const lane of LANE_NAMES) {
      const connection = createRedis(own.url, 'worker');
      connections.push(connection);
      queues[lane] = createLaneQueue(config, lane, connection);
    }
  });

  afterAll(async () => {
    await Promise.all([exporter?.kill('SIGKILL'), api?.kill('SIGTERM'), worker?.kill('SIGTERM'), doomed?.kill('SIGKILL')]);
    await Promise.all(Object.values(queues).map((q) => q.close()));
    for (const c of connections) c.disconnect();
    await prometheus?.stop();
    await new Promise((resolve) => failing?.close(resolve));
    redis?.disconnect();
    await own?.stop();
    if (own) removeDir(own.dir);
    rmSync(dir, { recursive: true, force: true });
  });

  const submit = async (lane: Lane, key: string, jobs: unknown[]) => {
    const res = await fetch(`${api.url}/v1/lanes/${lane}/jobs/bulk`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ jobs }),
    });
    const body = (await res.json()) as { created: number; rejected: number; results: Array<{ status: string; id?: string }> };
    return { status: res.status, ...body };
  };

  /** Submits one phase over REST: per lane, one bulk request per tenant. */
  const addPhase = async (): Promise<void> => {
    for (const lane of LANE_NAMES) {
      const kinds = (Object.entries(PLAN[lane]) as Array<[Kind, number]>).flatMap(([kind, n]) => Array<Kind>(n).fill(kind));
      await Promise.all(
        TENANTS.map(async (tenant, t) => {
          const mine = kinds.filter((_, i) => i % TENANTS.length === t);
          const res = await submit(lane, tenant.key, mine.map((kind) => submission(kind, failingUrl)));
          expect(res.created).toBe(mine.length);
          res.results.forEach((r, i) => {
            const kind = mine[i] as Kind;
            const state = account(truth[lane], lane, kind, tenant.label, submission(kind, failingUrl).name);
            expected.set(r.id as string, { lane, state });
          });
        }),
      );
    }
  };

  const finished = async (lane: Lane) => {
    const counts = await (queues[lane] as Queue).getJobCounts('completed', 'failed');
    const t = truth[lane];
    const failed = Object.values(t.failed).reduce((a, b) => a + b, 0);
    return counts.completed === t.completed && counts.failed === failed;
  };
  const allFinished = async () => (await finished('alpha')) && (await finished('beta'));

  const liveScrapes = async (): Promise<string[]> => [await exporter.scrape(), await api.scrape(), await (worker as AppProcess).scrape()];

  const matchesTruth = async () => {
    const samples = await exporter.samples();
    return LANE_NAMES.every((lane) => isDeepStrictEqual(exported(samples, lane), truth[lane]));
  };

  it('exports totals equal to the ground truth, after a SIGKILL of the exporter mid-run and a restart', async () => {
    // Prometheus holds the zeros before the first event, so every counter's rise is a rate.
    await waitUntil(async () => (await prometheus.vector('bullpen_jobs_completed_total')).length === 2, {
      what: 'Prometheus to scrape the exporter before the workload',
    });

    // A stall: the doomed worker takes a job and is SIGKILLed holding it; the other worker's stall
    // check finds the lock expired, and runs the job again.
    const stall = await submit('alpha', TENANTS[0].key, [{ name: 'sleep', data: { ms: 1500 } }]);
    const stallId = stall.results[0]?.id as string;
    expected.set(stallId, { lane: 'alpha', state: account(truth.alpha, 'alpha', 'ok', 'acme', 'sleep') });
    truth.alpha.stalled += 1;
    await waitUntil(async () => (await (queues.alpha as Queue).getJobState(stallId)) === 'active', { what: 'the doomed worker to take the job' });
    await doomed?.kill('SIGKILL');
    worker = await spawnWorkerApp({ ...base, WORKER_ID: 'survivor' }, workerPort);

    await addPhase();
    await waitUntil(allFinished, { timeoutMs: 60_000, what: 'phase 1 jobs (and the stalled one) to finish' });
    await waitUntil(matchesTruth, { timeoutMs: 30_000, what: 'exported totals to match phase 1' });

    // Phase 2, with the exporter SIGKILLed as soon as it has counted part of it.
    const before = total(await exporter.samples(), 'bullpen_exporter_events_processed_total');
    await addPhase();
    await waitUntil(async () => total(await exporter.samples(), 'bullpen_exporter_events_processed_total') > before, {
      intervalMs: 5,
      what: 'the exporter to count part of phase 2',
    });
    await exporter.kill('SIGKILL');
    await waitUntil(allFinished, { timeoutMs: 60_000, what: 'phase 2 jobs to finish' });

    // While it is dead: a batch larger than beta's room; the API refuses the overflow.
    const room = LANES.beta.maxQueueSize;
    const overflow = await submit('beta', TENANTS[0].key, Array.from({ length: room + OVERFLOW }, () => ({ name: 'noop' })));
    expect({ status: overflow.status, created: overflow.created, rejected: overflow.rejected }).toEqual({ status: 200, created: room, rejected: OVERFLOW });
    overflow.results.forEach((r) => {
      if (r.status === 'created') expected.set(r.id as string, { lane: 'beta', state: account(truth.beta, 'beta', 'ok', 'acme', 'noop') });
    });
    truth.beta.rejected += OVERFLOW;
    await waitUntil(allFinished, { timeoutMs: 60_000, what: 'the admitted overflow batch to finish' });

    for (const lane of LANE_NAMES) {
      const read = Number(await redis.hget(exporterStateKey(prefix, lane), 'read'));
      const info = (await redis.xinfo('STREAM', laneEventsKey(prefix, lane))) as unknown[];
      killedWithUnread += Number(info[info.indexOf('entries-added') + 1]) - read;
    }
    expect(killedWithUnread).toBeGreaterThan(0);
    // Restart only once Prometheus has seen the exporter down, so its series span the gap.
    await waitUntil(async () => (await prometheus.vector('up{job="bullpen-exporter"} == 0')).length === 1, {
      what: 'Prometheus to see the exporter down',
    });

    exporter = await spawnExporter(exporterEnv, exporterPort);
    await waitUntil(matchesTruth, { timeoutMs: 30_000, what: 'exported totals to match the ground truth after the restart' });
    const samples = await exporter.samples();
    for (const lane of LANE_NAMES) {
      expect(exported(samples, lane)).toEqual(truth[lane]);
      // Every stream entry counted once, none lost, and BullMQ agrees on what finished.
      const info = (await redis.xinfo('STREAM', laneEventsKey(prefix, lane))) as unknown[];
      expect(total(samples, 'bullpen_exporter_events_processed_total', { lane })).toBe(Number(info[info.indexOf('entries-added') + 1]));
      expect(total(samples, 'bullpen_exporter_events_lost_total', { lane })).toBe(0);
      expect(total(samples, 'bullpen_jobs_dead_lettered_total', { lane })).toBe(total(samples, 'bullpen_jobs_failed_total', { lane }));
      // Histograms: one run and one wait observation per attempt, one backoff per retry.
      const count = (name: string, labels: Record<string, string> = {}) => total(samples, `${name}_count`, { lane, ...labels });
      expect(count('bullpen_job_run_duration_seconds')).toBe(truth[lane].attempts);
      for (const name of JOB_NAMES) expect(count('bullpen_job_run_duration_seconds', { job_name: name })).toBe(truth[lane].attemptsByJobName[name]);
      expect(count('bullpen_job_wait_duration_seconds')).toBe(truth[lane].attempts);
      expect(count('bullpen_job_backoff_delay_seconds')).toBe(Object.values(truth[lane].retried).reduce((a, b) => a + b, 0));
      expect(total(samples, 'bullpen_job_backoff_delay_seconds_sum', { lane })).toBeCloseTo(
        (count('bullpen_job_backoff_delay_seconds') * BACKOFF_MS) / 1000,
        6,
      );
    }
    // The ground truth is what Redis holds: every job ended in the state its payload leads to.
    const ended = await Promise.all([...expected].map(async ([id, { lane }]) => [id, await (queues[lane] as Queue).getJobState(id)] as const));
    const wrong = ended.filter(([id, state]) => expected.get(id)?.state !== state);
    expect(wrong).toEqual([]);
    expect(expected.size).toBe(truth.alpha.enqueued + truth.beta.enqueued);
    // The API counted the same rejections itself.
    expect(total(await api.samples(), 'bullpen_api_admission_rejected_total', { lane: 'beta', reason: 'queue_full' })).toBe(OVERFLOW);
  });

  it('shows Prometheus the same totals, with no counter reset across the restart', async () => {
    const completed = truth.alpha.completed + truth.beta.completed;
    await waitUntil(async () => (await prometheus.vector('sum(bullpen_jobs_completed_total)'))[0]?.value === completed, {
      what: 'Prometheus to scrape the final totals',
    });
    for (const name of ['bullpen_jobs_enqueued_total', 'bullpen_jobs_completed_total', 'bullpen_exporter_events_processed_total']) {
      const resets = await prometheus.vector(`sum(resets(${name}[10m]))`);
      expect(`${name} resets: ${resets[0]?.value}`).toBe(`${name} resets: 0`);
    }
    const down = await prometheus.vector('min_over_time(up{job="bullpen-exporter"}[10m])');
    expect(down[0]?.value).toBe(0); // Prometheus did see the exporter die
  });

  it('evaluates every rule without error in Prometheus, and every rule expression through the HTTP API', async () => {
    interface ApiRule {
      name: string;
      query: string;
      health: string;
      lastError?: string;
    }
    const rules = await waitUntil(
      async () => {
        const body = await prometheus.api<{ data: { groups: Array<{ rules: ApiRule[] }> } }>('/api/v1/rules');
        const all = body.data.groups.flatMap((g) => g.rules);
        return all.length > 0 && all.every((r) => r.health !== 'unknown') ? all : undefined;
      },
      { what: 'every rule to be evaluated once' },
    );
    for (const rule of rules) {
      expect(`${rule.name}: ${rule.health} ${rule.lastError ?? ''}`.trim()).toBe(`${rule.name}: ok`);
      const result = await prometheus.query(rule.query);
      expect(`${rule.name}: ${result.status} ${result.error ?? ''}`.trim()).toBe(`${rule.name}: success`);
    }
  });

  it('evaluates every query of every dashboard panel without error, and the core panels return data', async () => {
    await waitUntil(async () => (await prometheus.vector('bullpen:lane_completed:rate5m{lane="alpha"} > 0')).length === 1, {
      what: 'recording rules over the workload',
    });
    const values = await prometheus.api<{ data: string[] }>(`/api/v1/label/lane/values?match[]=bullpen_queue_jobs`);
    expect(values.data).toEqual(['alpha', 'beta']); // the lane variable's options
    const substitute = (expr: string) =>
      expr.replaceAll('$__rate_interval', '1m').replaceAll('$__interval', '15s').replaceAll('$__range', '10m').replaceAll('$lane', 'alpha');
    const apiOrWorker = new Set(metricsOf('api', 'worker').map((d) => d.name));
    for (const file of ['overview.json', 'lane.json']) {
      const dashboard = JSON.parse(readFileSync(path.join(REPO_ROOT, 'grafana/dashboards', file), 'utf8')) as {
        panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
      };
      for (const panel of dashboard.panels) {
        for (const target of panel.targets) {
          const expr = substitute(target.expr);
          const result = await prometheus.query(expr);
          const where = `${file} "${panel.title}": ${expr}`;
          expect(`${where} → ${result.status} ${result.error ?? ''}`.trim()).toBe(`${where} → success`);
          const core =
            !expr.includes('ALERTS') && !namesIn(expr).metrics.some((m) => apiOrWorker.has(catalogueNameOf(m) ?? m));
          if (!core) continue;
          // Series go stale for a scrape or two around the exporter's restart: wait them back.
          const rows = await waitUntil(async () => (await prometheus.vector(expr)).length, { timeoutMs: 10_000 }).catch(() => 0);
          expect(`${where} → ${rows} series`).not.toBe(`${where} → 0 series`);
        }
      }
    }
  });

  it('has promtool check metrics accept live scrapes of the exporter, the API and the worker', async () => {
    for (const text of await liveScrapes()) {
      const result = promtool(['check', 'metrics'], text);
      expect(`${result.status} ${result.stdout}${result.stderr}`.trim()).toBe('0');
    }
  });

  it('names in dashboards and rules only metrics that are in the catalogue and in a live scrape', async () => {
    const live = new Set<string>();
    for (const text of await liveScrapes()) {
      for (const name of declaredMetrics(text)) live.add(name);
    }
    const texts = [
      readFileSync(path.join(REPO_ROOT, 'grafana/dashboards/overview.json'), 'utf8'),
      readFileSync(path.join(REPO_ROOT, 'grafana/dashboards/lane.json'), 'utf8'),
      readFileSync(path.join(REPO_ROOT, 'prometheus/rules/recording.yml'), 'utf8'),
      readFileSync(path.join(REPO_ROOT, 'prometheus/rules/alerts.yml'), 'utf8'),
    ];
    const named = new Set(texts.flatMap((t) => namesIn(t).metrics));
    expect(named.size).toBeGreaterThan(20);
    for (const metric of named) {
      const base = catalogueNameOf(metric);
      expect(`${metric}: ${base ? 'catalogue' : 'NOT in catalogue'}, ${base && live.has(base) ? 'scraped' : 'NOT scraped'}`).toBe(
        `${metric}: catalogue, scraped`,
      );
    }
  });
});
