// prometheus/: the configuration and rules pass promtool, every alert has its unit tests, its
// labels, annotations and a runbook section that exists, and every metric a rule names is in
// the catalogue. Rules are read back from a real Prometheus that loaded them (/api/v1/rules),
// so what is checked is what Prometheus parsed.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { catalogueNameOf, METRIC_CATALOGUE } from '@bullpen/core';
import {
  markdownAnchors,
  namesIn,
  promtool,
  REPO_ROOT,
  RULE_FILES,
  startPrometheus,
  type PrometheusProcess,
} from './support/prometheus';

interface ApiRule {
  type: 'alerting' | 'recording';
  name: string;
  query: string;
  duration?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

const PROM_DIR = path.join(REPO_ROOT, 'prometheus');
const TEST_FILES = readdirSync(path.join(PROM_DIR, 'tests'))
  .filter((f) => f.endsWith('.yml'))
  .map((f) => path.join(PROM_DIR, 'tests', f));

describe('prometheus/ configuration and rules', () => {
  let prometheus: PrometheusProcess;
  let rules: ApiRule[];

  beforeAll(async () => {
    prometheus = await startPrometheus({ jobs: [] });
    const body = await prometheus.api<{ data: { groups: Array<{ rules: ApiRule[] }> } }>('/api/v1/rules');
    rules = body.data.groups.flatMap((g) => g.rules);
  });
  afterAll(async () => {
    await prometheus?.stop();
  });

  const alerts = () => rules.filter((r) => r.type === 'alerting');
  const recorded = () => new Set(rules.filter((r) => r.type === 'recording').map((r) => r.name));

  it('passes promtool check config, which also checks the rule files it names', () => {
    const result = promtool(['check', 'config', path.join(PROM_DIR, 'prometheus.yml')]);
    expect(result.stdout + result.stderr).toContain('SUCCESS');
    expect(result.status).toBe(0);
  });

  it('passes promtool check rules on every rule file', () => {
    const result = promtool(['check', 'rules', ...RULE_FILES]);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('passes promtool test rules on every test file', () => {
    expect(TEST_FILES.length).toBeGreaterThan(0);
    for (const file of TEST_FILES) {
      const result = promtool(['test', 'rules', file]);
      expect(`${file}: ${result.stdout}${result.stderr}`).toContain('SUCCESS');
      expect(result.status).toBe(0);
    }
  });

  it('scrapes the exporter, the API and every worker replica under the names the alerts use', () => {
    const config = readFileSync(path.join(PROM_DIR, 'prometheus.yml'), 'utf8');
    expect(config).toMatch(/job_name: bullpen-exporter\s+static_configs:\s+- targets: \['exporter:9400'\]/);
    expect(config).toMatch(/job_name: bullpen-api\s+metrics_path: \/metrics\s+static_configs:\s+- targets: \['api:3000'\]/);
    expect(config).toMatch(/job_name: bullpen-worker\s+dns_sd_configs:\s+- names: \['worker'\]\s+type: A\s+port: 9464/);
    expect(config).toMatch(/rule_files:\s+- rules\/recording.yml\s+- rules\/alerts.yml/);
  });

  it('loads at least the alerts the metrics issue asks for', () => {
    const names = alerts().map((a) => a.name);
    for (const name of [
      'BullpenLaneErrorRatioHigh',
      'BullpenLaneRunTimeP95High',
      'BullpenLaneRunTimeP99Critical',
      'BullpenLaneBacklogHigh',
      'BullpenLaneBacklogCritical',
      'BullpenLaneStuck',
      'BullpenLaneNoWorkers',
      'BullpenDeadLettersGrowing',
      'BullpenRetryBudgetExhausted',
      'BullpenJobsStalled',
      'BullpenExporterDown',
      'BullpenRedisDown',
    ]) {
      expect(names).toContain(name);
    }
  });

  it('gives every alert a for, a severity, a summary, a description and a runbook_url to a section of docs/runbooks.md', () => {
    const anchors = markdownAnchors(readFileSync(path.join(REPO_ROOT, 'docs/runbooks.md'), 'utf8'));
    for (const alert of alerts()) {
      const where = `alert ${alert.name}`;
      expect(`${where}: for ${alert.duration}`).toMatch(/for [1-9]\d*$/);
      expect(`${where}: ${alert.labels?.severity}`).toMatch(/: (warning|critical)$/);
      expect(alert.annotations?.summary ?? '').not.toBe('');
      expect(alert.annotations?.description ?? '').not.toBe('');
      const url = alert.annotations?.runbook_url ?? '';
      expect(`${where}: ${url}`).toMatch(/: docs\/runbooks\.md#[a-z0-9-]+$/);
      const anchor = url.split('#')[1] as string;
      expect(`${where}: #${anchor} ${anchors.has(anchor) ? 'exists' : 'is missing'} in docs/runbooks.md`).toMatch(/exists/);
    }
  });

  it('has a runbook section that says what to check and what to do for every alert', () => {
    const runbooks = readFileSync(path.join(REPO_ROOT, 'docs/runbooks.md'), 'utf8');
    for (const alert of alerts()) {
      const section = runbooks.split(/^## /m).find((s) => s.startsWith(`${alert.name}\n`)) ?? '';
      expect(`${alert.name}: ${/\*\*Check\*\*/.test(section)} ${/\*\*Do\*\*/.test(section)}`).toBe(`${alert.name}: true true`);
    }
  });

  it('tests every alert firing at its for and silent just before it, in prometheus/tests', () => {
    const text = TEST_FILES.map((f) => readFileSync(f, 'utf8')).join('\n');
    for (const alert of alerts()) {
      const silent = new RegExp(`alertname: ${alert.name}\\s+exp_alerts: \\[\\]`);
      const firing = new RegExp(`alertname: ${alert.name}\\s+exp_alerts:\\s+- exp_labels:`);
      expect(`${alert.name} silent case: ${silent.test(text)}`).toBe(`${alert.name} silent case: true`);
      expect(`${alert.name} firing case: ${firing.test(text)}`).toBe(`${alert.name} firing case: true`);
    }
  });

  it('names only metrics of the catalogue and recording rules that exist', () => {
    const defined = recorded();
    for (const rule of rules) {
      const { metrics, recorded: used } = namesIn(rule.query);
      for (const metric of metrics) {
        expect(`${rule.name} uses ${metric}: ${catalogueNameOf(metric) ? 'in catalogue' : 'NOT in catalogue'}`).toMatch(/: in catalogue$/);
      }
      for (const name of used) expect(`${rule.name} uses ${name}: ${defined.has(name)}`).toMatch(/: true$/);
    }
  });
});

describe('the metric documentation', () => {
  it('documents every catalogue metric with its type and labels in apps/exporter/README.md', () => {
    const readme = readFileSync(path.join(REPO_ROOT, 'apps/exporter/README.md'), 'utf8');
    for (const d of METRIC_CATALOGUE) {
      const labels = d.labelNames.map((l) => `\`${l}\``).join(', ') || '—';
      expect(readme).toContain(`| \`${d.name}\` | ${d.type} | ${labels} | ${d.origin} |`);
    }
  });
});
