// grafana/: provisioning points at a fixed datasource uid and a file provider; both dashboards
// use the datasource variable (never a hard-coded uid, no __inputs), every panel has a unit and a
// description, the drill-down has a lane variable, and every metric a panel names is in the
// catalogue. On an idle system, run by the real apps and scraped by a real Prometheus, no panel
// shows NaN. (test/metrics-pipeline.test.ts evaluates every query under load.)
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { catalogueNameOf } from '@bullpen/core';
import { writeLanesFile } from './fixtures/worker-process';
import { cleanupPrefix } from './support/config';
import {
  namesIn,
  REPO_ROOT,
  spawnApi,
  spawnExporter,
  spawnWorkerApp,
  startPrometheus,
  type AppProcess,
  type PrometheusProcess,
} from './support/prometheus';
import { freePort } from './support/redis-server';
import { redisUrl, testPrefix, waitUntil } from './support/wait';

interface Target {
  expr?: string;
  refId?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id?: number;
  type?: string;
  title?: string;
  description?: string;
  datasource?: { type?: string; uid?: string };
  fieldConfig?: { defaults?: { unit?: string } };
  gridPos?: { h: number; w: number; x: number; y: number };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  uid?: string;
  title?: string;
  __inputs?: unknown;
  panels: Panel[];
  templating?: { list: Array<{ name: string; type: string; query?: unknown; datasource?: { uid?: string } }> };
}

const GRAFANA = path.join(REPO_ROOT, 'grafana');
const load = (name: string): Dashboard => JSON.parse(readFileSync(path.join(GRAFANA, 'dashboards', name), 'utf8')) as Dashboard;
const DASHBOARDS = { 'overview.json': load('overview.json'), 'lane.json': load('lane.json') };
const RECORDED = new Set(
  [...readFileSync(path.join(REPO_ROOT, 'prometheus/rules/recording.yml'), 'utf8').matchAll(/record: (\S+)/g)].map((m) => m[1]),
);

function panelsOf(d: Dashboard): Panel[] {
  return d.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

describe('grafana/ provisioning', () => {
  it('provisions the Prometheus datasource with the fixed uid bullpen-prometheus at http://prometheus:9090', () => {
    const text = readFileSync(path.join(GRAFANA, 'provisioning/datasources/prometheus.yml'), 'utf8');
    expect(text).toMatch(/^\s+uid: bullpen-prometheus$/m);
    expect(text).toMatch(/^\s+type: prometheus$/m);
    expect(text).toMatch(/^\s+url: http:\/\/prometheus:9090$/m);
  });

  it('loads the dashboards from the mounted folder with a file provider, and lands users on the overview', () => {
    const provider = readFileSync(path.join(GRAFANA, 'provisioning/dashboards/bullpen.yml'), 'utf8');
    expect(provider).toMatch(/^\s+type: file$/m);
    expect(provider).toMatch(/^\s+path: \/var\/lib\/grafana\/dashboards\/bullpen$/m);
    const ini = readFileSync(path.join(GRAFANA, 'grafana.ini'), 'utf8');
    expect(ini).toMatch(/^default_home_dashboard_path = \/var\/lib\/grafana\/dashboards\/bullpen\/overview.json$/m);
    const readme = readFileSync(path.join(GRAFANA, 'README.md'), 'utf8');
    expect(readme).toContain('./grafana/dashboards:/var/lib/grafana/dashboards/bullpen');
  });
});

describe.each(Object.entries(DASHBOARDS))('dashboard %s', (_file, dashboard) => {
  const panels = panelsOf(dashboard);

  it('has a fixed uid, no __inputs, and a datasource variable of type prometheus', () => {
    expect(dashboard.uid).toMatch(/^bullpen-/);
    expect(dashboard.__inputs).toBeUndefined();
    const ds = dashboard.templating?.list.find((v) => v.name === 'datasource');
    expect(ds).toMatchObject({ type: 'datasource', query: 'prometheus' });
    // No hard-coded datasource anywhere, not even as the variable's default selection.
    expect(JSON.stringify(dashboard).includes('bullpen-prometheus')).toBe(false);
  });

  it('gives every panel a description, a unit and the datasource variable, on the panel and each query', () => {
    expect(panels.length).toBeGreaterThan(10);
    for (const p of panels) {
      const where = `panel "${p.title}"`;
      expect(`${where}: ${p.description?.trim() ? 'described' : 'no description'}`).toBe(`${where}: described`);
      expect(`${where}: ${p.fieldConfig?.defaults?.unit ? 'has unit' : 'no unit'}`).toBe(`${where}: has unit`);
      expect(`${where}: ${p.datasource?.uid}`).toBe(`${where}: \${datasource}`);
      expect(p.targets?.length).toBeGreaterThan(0);
      for (const t of p.targets ?? []) {
        expect(`${where} ${t.refId}: ${t.datasource?.uid}`).toBe(`${where} ${t.refId}: \${datasource}`);
        expect(t.expr?.trim()).toBeTruthy();
      }
    }
  });

  it('has unique panel ids and titles, and panels laid out within the 24-column grid', () => {
    expect(new Set(panels.map((p) => p.id)).size).toBe(panels.length);
    expect(new Set(panels.map((p) => p.title)).size).toBe(panels.length);
    for (const p of panels) expect((p.gridPos?.x ?? 99) + (p.gridPos?.w ?? 99)).toBeLessThanOrEqual(24);
  });

  it('names only metrics of the catalogue and recording rules that exist', () => {
    for (const p of panels) {
      for (const t of p.targets ?? []) {
        const { metrics, recorded } = namesIn(t.expr ?? '');
        for (const m of metrics) expect(`${p.title}: ${m} ${catalogueNameOf(m) ? 'in catalogue' : 'NOT in catalogue'}`).toMatch(/in catalogue$/);
        for (const r of recorded) expect(`${p.title}: ${r} ${RECORDED.has(r) ? 'recorded' : 'NOT recorded'}`).toMatch(/ recorded$/);
      }
    }
  });
});

describe('the lane drill-down', () => {
  const lane = DASHBOARDS['lane.json'];

  it('has a lane variable read from the exporter, and filters lane-level queries by it', () => {
    const variable = lane.templating?.list.find((v) => v.name === 'lane');
    expect(variable).toMatchObject({ type: 'query', datasource: { uid: '${datasource}' } });
    expect(JSON.stringify(variable?.query)).toContain('label_values(bullpen_queue_jobs, lane)');
    for (const p of panelsOf(lane)) {
      for (const t of p.targets ?? []) {
        const laneLevel = /bullpen_(jobs|job|queue|retry|exporter_event)_|bullpen:lane_/.test(t.expr ?? '');
        if (laneLevel) expect(`${p.title}: ${t.expr}`).toContain('lane="$lane"');
      }
    }
  });
});

describe('the overview', () => {
  it('covers throughput, errors, latency, backlog, retries, dead letters, stalls, workers, budget and alerts', () => {
    const exprs = panelsOf(DASHBOARDS['overview.json']).flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ''));
    const all = exprs.join('\n');
    for (const needle of [
      'bullpen_jobs_completed_total',
      'bullpen:lane_error_ratio:rate5m',
      'bullpen:lane_run_duration_seconds:p50_5m',
      'bullpen:lane_run_duration_seconds:p95_5m',
      'bullpen:lane_run_duration_seconds:p99_5m',
      'bullpen:lane_wait_duration_seconds:p95_5m',
      'bullpen:lane_backlog:jobs',
      'bullpen:lane_oldest_waiting_age_seconds',
      'bullpen_jobs_retried_total',
      'bullpen_jobs_dead_lettered_total',
      'bullpen_jobs_stalled_total',
      'bullpen:lane_workers:count',
      'bullpen_retry_budget_exhausted_total',
      'ALERTS{alertstate="firing"',
    ]) {
      expect(all).toContain(needle);
    }
  });
});

describe('the dashboards on an idle but running system', () => {
  // Prometheus scrapes every second here, so Grafana's $__rate_interval would be 4 s (four scrapes).
  const RATE_INTERVAL = '5s';
  const KEY = 'idle-key-0001';
  const LANES = ['alpha', 'beta'];
  const lanesFile = writeLanesFile({
    lanes: {
      alpha: { concurrency: 2, attempts: 3, backoff: { strategy: 'fixed', baseMs: 25, capMs: 25 } },
      beta: { concurrency: 1 },
    },
  });
  const prefix = testPrefix('idle');
  const env = { REDIS_URL: redisUrl(), BULLPEN_PREFIX: prefix, LANES_FILE: lanesFile.file, API_KEYS: `acme:${KEY}` };
  let apps: AppProcess[] = [];
  let api: AppProcess;
  let prometheus: PrometheusProcess;

  beforeAll(async () => {
    const [exporterPort, apiPort, workerPort] = await Promise.all([freePort(), freePort(), freePort()]);
    let started: AppProcess[];
    [started, prometheus] = await Promise.all([
      Promise.all([spawnExporter(env, exporterPort), spawnApi(env, apiPort), spawnWorkerApp(env, workerPort)]),
      startPrometheus({
        jobs: [
          { job: 'bullpen-exporter', targets: [`127.0.0.1:${exporterPort}`] },
          { job: 'bullpen-api', targets: [`127.0.0.1:${apiPort}`] },
          { job: 'bullpen-worker', targets: [`127.0.0.1:${workerPort}`] },
        ],
      }),
    ]);
    apps = started;
    api = started[1] as AppProcess;
  }, 120_000);

  afterAll(async () => {
    await Promise.all(apps.map((app) => app.kill('SIGTERM')));
    await prometheus?.stop();
    await cleanupPrefix(prefix);
    lanesFile.cleanup();
  });

  /** Every panel query (the lane dashboard's for each lane) and every recording rule whose value is NaN. */
  const nanResults = async (): Promise<string[]> => {
    const found: string[] = [];
    for (const [file, dashboard] of Object.entries(DASHBOARDS)) {
      for (const panel of panelsOf(dashboard)) {
        for (const target of panel.targets ?? []) {
          const template = target.expr ?? '';
          for (const lane of template.includes('$lane') ? LANES : ['']) {
            const expr = template.replaceAll('$__rate_interval', RATE_INTERVAL).replaceAll('$lane', lane);
            for (const row of await prometheus.vector(expr)) {
              if (Number.isNaN(row.value)) found.push(`${file} "${panel.title}": ${expr} → NaN for ${JSON.stringify(row.metric)}`);
            }
          }
        }
      }
    }
    for (const row of await prometheus.vector('{__name__=~"bullpen:.+"}')) {
      if (Number.isNaN(row.value)) found.push(`recording rule ${JSON.stringify(row.metric)} → NaN`);
    }
    return found;
  };

  it('shows no NaN in any panel or recording rule before the first job, when nothing has finished', async () => {
    // The rates of the counters (at 0 from the start) exist once Prometheus holds two scrapes.
    for (const rule of ['bullpen:lane_completed:rate5m', 'bullpen:lane_errors:rate5m']) {
      await waitUntil(async () => (await prometheus.vector(rule)).length === LANES.length, { what: `${rule} for every lane` });
    }
    expect(await nanResults()).toEqual([]);
  });

  it('shows no NaN in any panel or recording rule once the jobs that ran have left the rate window', async () => {
    const jobs = [{ name: 'noop' }, { name: 'noop' }, { name: 'fail', data: { kind: 'retryable', succeedOnAttempt: 2 } }];
    for (const job of jobs) {
      const res = await fetch(`${api.url}/v1/lanes/alpha/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify(job),
      });
      expect(res.status).toBe(201);
    }
    // Counted (run time, wait time and backoff histograms now have series), then idle for a window.
    await waitUntil(async () => (await prometheus.vector('sum(bullpen_jobs_completed_total)'))[0]?.value === jobs.length, {
      timeoutMs: 30_000,
      what: 'Prometheus to see the jobs completed',
    });
    await waitUntil(
      async () =>
        (await prometheus.vector(`sum(bullpen_job_backoff_delay_seconds_count) > 0`)).length === 1 &&
        (await prometheus.vector(`sum(increase(bullpen_job_run_duration_seconds_count[${RATE_INTERVAL}])) == 0`)).length === 1,
      { timeoutMs: 30_000, what: `no attempt in the last ${RATE_INTERVAL}` },
    );
    expect(await nanResults()).toEqual([]);
  });
});

describe('capacity on the dashboards, with a worker whose process-wide cap holds fewer handlers than the lanes it serves', () => {
  // Two workers serve alpha and beta (concurrency 4 each); one runs at most 2 handlers in all
  // (WORKER_MAX_HANDLERS=2), so it gives alpha 1 slot while beta may take the other.
  const lanesFile = writeLanesFile({ lanes: { alpha: { concurrency: 4 }, beta: { concurrency: 4 } } });
  const prefix = testPrefix('capacity');
  const env = { REDIS_URL: redisUrl(), BULLPEN_PREFIX: prefix, LANES_FILE: lanesFile.file };
  let apps: AppProcess[] = [];
  let prometheus: PrometheusProcess;
  let cappedInstance: string;

  beforeAll(async () => {
    const [exporterPort, workerPort, cappedPort] = await Promise.all([freePort(), freePort(), freePort()]);
    cappedInstance = `127.0.0.1:${cappedPort}`;
    let started: AppProcess[];
    [started, prometheus] = await Promise.all([
      Promise.all([spawnExporter(env, exporterPort), spawnWorkerApp(env, workerPort), spawnWorkerApp({ ...env, WORKER_MAX_HANDLERS: '2' }, cappedPort)]),
      startPrometheus({
        jobs: [
          { job: 'bullpen-exporter', targets: [`127.0.0.1:${exporterPort}`] },
          { job: 'bullpen-worker', targets: [`127.0.0.1:${workerPort}`, cappedInstance] },
        ],
      }),
    ]);
    apps = started;
  }, 120_000);

  afterAll(async () => {
    await Promise.all(apps.map((app) => app.kill('SIGTERM')));
    await prometheus?.stop();
    await cleanupPrefix(prefix);
    lanesFile.cleanup();
  });

  const panelExpr = (title: string, refId: string): string => {
    const panel = panelsOf(DASHBOARDS['lane.json']).find((p) => p.title === title);
    const expr = panel?.targets?.find((t) => t.refId === refId)?.expr;
    if (!expr) throw new Error(`no query ${refId} in panel "${title}"`);
    return expr.replaceAll('$lane', 'alpha');
  };

  it('counts the slots each worker gives the lane, not its concurrency on every worker', async () => {
    await waitUntil(async () => (await prometheus.vector('bullpen:lane_workers:count{lane="alpha"} == 2')).length === 1, {
      what: 'both workers to be counted on alpha',
    });
    await waitUntil(async () => (await prometheus.vector('count(bullpen_worker_slot_share{lane="alpha"})')).at(0)?.value === 2, {
      what: 'both workers to be scraped',
    });
    // 4 from the uncapped worker, 1 from the capped one (not 4 × 2 = 8). The panel reads a
    // recording rule, which the next rule evaluation after both scrapes brings up to date.
    const capacity = async () => (await prometheus.vector(panelExpr('Active jobs and capacity', 'B'))).map((r) => r.value);
    await waitUntil(async () => (await capacity())[0] === 5, { what: 'the capacity rule evaluated on both workers\' shares' }).catch(() => undefined);
    expect(await capacity()).toEqual([5]);
    const slots = await prometheus.vector(panelExpr('Worker active handlers', 'B'));
    expect(slots.find((r) => r.metric.instance === cappedInstance)?.value).toBe(1);
  });
});
