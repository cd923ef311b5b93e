// grafana/: provisioning points at a fixed datasource uid and a file provider; both dashboards
// use the datasource variable (never a hard-coded uid, no __inputs), every panel has a unit and a
// description, the drill-down has a lane variable, and every metric a panel names is in the
// catalogue. (test/metrics-pipeline.test.ts evaluates every query against a real Prometheus.)
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { catalogueNameOf } from '@bullpen/core';
import { namesIn, REPO_ROOT } from './support/prometheus';

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
