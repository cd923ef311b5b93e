// A real Prometheus for tests: started on a free loopback port with a generated configuration
// that scrapes the test's processes every second and loads the repository's rule files, its
// TSDB in a temp directory; plus a query helper, promtool, the app processes Prometheus scrapes
// (exporter, API, worker), and a parser for the text exposition format.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './redis-server';
import { waitUntil } from './wait';

export const NO_PROMETHEUS_MESSAGE =
  'The metrics tests need Prometheus and promtool: apt-get install prometheus ' +
  '(Debian package; .ci/run installs it when absent).';

export const REPO_ROOT = path.resolve(__dirname, '../..');
export const RULE_FILES = [
  path.join(REPO_ROOT, 'prometheus/rules/recording.yml'),
  path.join(REPO_ROOT, 'prometheus/rules/alerts.yml'),
];

export function hasPrometheus(): boolean {
  const ok = (cmd: string) => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
  return ok('prometheus') && ok('promtool');
}

export function requirePrometheus(): void {
  if (!hasPrometheus()) throw new Error(NO_PROMETHEUS_MESSAGE);
}

export interface PromtoolResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function promtool(args: string[], input?: string): PromtoolResult {
  requirePrometheus();
  const result = spawnSync('promtool', args, { input, encoding: 'utf8', cwd: REPO_ROOT });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

export interface ScrapeJob {
  /** Prometheus job name, e.g. bullpen-exporter (as in prometheus/prometheus.yml). */
  job: string;
  /** host:port targets. */
  targets: string[];
}

export interface QueryResult {
  status: 'success' | 'error';
  errorType?: string;
  error?: string;
  data?: { resultType: string; result: Array<{ metric: Record<string, string>; value?: [number, string] }> };
}

export interface PrometheusProcess {
  url: string;
  port: number;
  /** GET /api/v1/query; resolves to the parsed body whether the query succeeded or not. */
  query(expr: string): Promise<QueryResult>;
  /** The instant vector of a query that must succeed. */
  vector(expr: string): Promise<Array<{ metric: Record<string, string>; value: number }>>;
  /** GET an API path (e.g. /api/v1/rules) and parse its JSON. */
  api<T = unknown>(pathAndQuery: string): Promise<T>;
  stop(): Promise<void>;
}

export interface StartPrometheusOptions {
  jobs: ScrapeJob[];
  ruleFiles?: string[];
  scrapeIntervalSeconds?: number;
}

function yamlList(items: string[]): string {
  return `[${items.map((s) => JSON.stringify(s)).join(', ')}]`;
}

export async function startPrometheus(options: StartPrometheusOptions): Promise<PrometheusProcess> {
  requirePrometheus();
  const interval = `${options.scrapeIntervalSeconds ?? 1}s`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-prometheus-'));
  const config = [
    'global:',
    `  scrape_interval: ${interval}`,
    `  scrape_timeout: ${interval}`,
    `  evaluation_interval: ${interval}`,
    `rule_files: ${yamlList(options.ruleFiles ?? RULE_FILES)}`,
    options.jobs.length === 0 ? 'scrape_configs: []' : 'scrape_configs:',
    ...options.jobs.flatMap((j) => [`  - job_name: ${j.job}`, '    static_configs:', `      - targets: ${yamlList(j.targets)}`]),
    '',
  ].join('\n');
  const configFile = path.join(dir, 'prometheus.yml');
  writeFileSync(configFile, config);
  const check = promtool(['check', 'config', configFile]);
  if (check.status !== 0) throw new Error(`generated Prometheus config is invalid:\n${check.stdout}${check.stderr}`);

  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let output = '';
  const child: ChildProcess = spawn(
    'prometheus',
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${path.join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));

  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      });
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const api = async <T>(pathAndQuery: string): Promise<T> => {
    const res = await fetch(`${url}${pathAndQuery}`);
    return (await res.json()) as T;
  };
  const query = (expr: string) => api<QueryResult>(`/api/v1/query?query=${encodeURIComponent(expr)}`);

  try {
    await waitUntil(
      async () => {
        if (child.exitCode !== null) throw new Error(`prometheus exited: ${output}`);
        const res = await fetch(`${url}/-/ready`).catch(() => undefined);
        return res?.ok;
      },
      { timeoutMs: 30_000, intervalMs: 100, what: 'prometheus to be ready' },
    );
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    url,
    port,
    query,
    api,
    async vector(expr) {
      const result = await query(expr);
      if (result.status !== 'success' || !result.data) throw new Error(`query ${expr} failed: ${result.error}`);
      return result.data.result.map((r) => ({ metric: r.metric, value: Number(r.value?.[1]) }));
    },
    stop,
  };
}

// ── The apps as processes ───────────────────────────────────────────────────────────────

export const EXPORTER_MAIN = path.join(REPO_ROOT, 'apps/exporter/dist/main.js');
export const API_MAIN = path.join(REPO_ROOT, 'apps/api/dist/main.js');
export const WORKER_MAIN = path.join(REPO_ROOT, 'apps/worker/dist/main.js');

/** A bullpen app run as `node apps/<app>/dist/main.js`, serving /metrics on `port`. */
export interface AppProcess {
  /** Its process id: a test that expects the app to ride out an outage checks it never changed. */
  pid: number;
  port: number;
  url: string;
  /** Everything it wrote to stdout and stderr so far (JSON log lines). */
  output(): string;
  /** Its log lines, parsed. */
  logs(): Array<Record<string, unknown>>;
  /** GET /metrics as text. */
  scrape(): Promise<string>;
  /** Parsed samples of GET /metrics. */
  samples(): Promise<Sample[]>;
  /** Sends a signal and waits for the process to exit. */
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Its exit code once it has exited (null while running or when killed by a signal). */
  exitCode(): number | null;
}

export type ExporterProcess = AppProcess;

interface SpawnAppOptions {
  /** e.g. 'exporter', for messages. */
  app: string;
  main: string;
  /** Its environment besides PATH, HOST=127.0.0.1 and LOG_LEVEL=info (which it may override). */
  env: Record<string, string>;
  port: number;
  /** Resolves truthy once the app is ready, given its base URL. */
  ready(url: string): Promise<unknown>;
  /** Instead of `ready`: started once its log has a line for which this is true. */
  until?: LogCondition;
}

/** A condition on an app's parsed log lines. */
export type LogCondition = (logs: Array<Record<string, unknown>>) => boolean;

/** For the spawn helpers: resolve once the app's log has a line for which `until` is true, ready or not. */
export interface SpawnOptions {
  until?: LogCondition;
}

async function spawnApp({ app, main, env, port, ready, until }: SpawnAppOptions): Promise<AppProcess> {
  if (!require('node:fs').existsSync(main)) {
    throw new Error(`${main} is missing: build the ${app} first (npx tsc -b apps/${app}, or npm run build)`);
  }
  let output = '';
  const child = spawn(process.execPath, [main], {
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const proc: AppProcess = {
    pid: child.pid ?? 0,
    port,
    url,
    output: () => output,
    logs: () =>
      output
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    async scrape() {
      const res = await fetch(`${url}/metrics`);
      if (!res.ok) throw new Error(`GET /metrics: ${res.status}`);
      return res.text();
    },
    async samples() {
      return parseExposition(await proc.scrape());
    },
    exitCode: () => child.exitCode,
    async kill(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
  const ended = () => child.exitCode !== null || child.signalCode !== null;
  try {
    // An app that exits stops the wait at once (waitUntil takes a throwing probe for "not yet").
    await waitUntil(async () => ended() || (until ? until(proc.logs()) : ready(url)), {
      // Generous: four apps starting at once on a busy 2-core machine take over 20 s.
      timeoutMs: 60_000,
      intervalMs: 50,
      what: `the ${app} to be ready`,
    });
    if (ended()) throw new Error(`${app} exited with ${child.exitCode ?? child.signalCode}: ${output}`);
  } catch (err) {
    await proc.kill('SIGKILL');
    throw new Error(`${(err as Error).message}\n${app} output:\n${output.slice(-3000)}`);
  }
  return proc;
}

/**
 * Starts `node apps/exporter/dist/main.js` (build it first: npx tsc -b apps/exporter) with the
 * given environment, on `port` (a free one when omitted), and waits until it reads the streams.
 */
/**
 * Starts the exporter; ready once it reads the lane streams, or with `{ standby: true }` once it
 * answers as a standby (another exporter of the prefix holds the leadership lease).
 */
export async function spawnExporter(
  env: Record<string, string>,
  port?: number,
  { standby = false, until }: { standby?: boolean } & SpawnOptions = {},
): Promise<ExporterProcess> {
  const listenPort = port ?? (await freePort());
  return spawnApp({
    until,
    app: 'exporter',
    main: EXPORTER_MAIN,
    env: { ...env, EXPORTER_PORT: String(listenPort) },
    port: listenPort,
    async ready(url) {
      const res = await fetch(`${url}/healthz`).catch(() => undefined);
      if (!res?.ok) return false;
      const health = (await res.json()) as { reading?: boolean; role?: string };
      return standby ? health.role === 'standby' : health.reading === true;
    },
  });
}

/** Starts `node apps/api/dist/main.js` on PORT `port` (free when omitted); ready once /readyz is. */
export async function spawnApi(env: Record<string, string>, port?: number, { until }: SpawnOptions = {}): Promise<AppProcess> {
  const listenPort = port ?? (await freePort());
  return spawnApp({
    until,
    app: 'api',
    main: API_MAIN,
    env: { ...env, PORT: String(listenPort) },
    port: listenPort,
    ready: async (url) => (await fetch(`${url}/readyz`).catch(() => undefined))?.ok,
  });
}

/**
 * Starts `node apps/worker/dist/main.js` with its metrics on WORKER_METRICS_PORT `port` (free when
 * omitted); ready once /healthz says its lanes run.
 */
export async function spawnWorkerApp(env: Record<string, string>, port?: number, { until }: SpawnOptions = {}): Promise<AppProcess> {
  const listenPort = port ?? (await freePort());
  return spawnApp({
    until,
    app: 'worker',
    main: WORKER_MAIN,
    env: { ...env, WORKER_METRICS_PORT: String(listenPort) },
    port: listenPort,
    ready: async (url) => (await fetch(`${url}/healthz`).catch(() => undefined))?.ok,
  });
}

// ── The text exposition format ─────────────────────────────────────────────────────────────

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) throw new Error(`unparsable exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, '$1');
    }
    const raw = match[3] as string;
    samples.push({ name: match[1] as string, labels, value: raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw) });
  }
  return samples;
}

/** The metric families a scrape declares (# TYPE lines), with or without samples. */
export function declaredMetrics(text: string): Set<string> {
  return new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] as string));
}

/** Sum of the samples of one series name whose labels include `where`. */
export function total(samples: readonly Sample[], name: string, where: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(where).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

// ── Reading PromQL and Markdown ────────────────────────────────────────────────────────────

/** bullpen_* metric names and bullpen:* recording rule names in a PromQL expression. */
export function namesIn(expr: string): { metrics: string[]; recorded: string[] } {
  return {
    metrics: [...new Set([...expr.matchAll(/\bbullpen_[a-z0-9_]+\b/g)].map((m) => m[0]))],
    recorded: [...new Set([...expr.matchAll(/\bbullpen:[a-z0-9_:]+/g)].map((m) => m[0]))],
  };
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes. */
export function markdownAnchors(markdown: string): Set<string> {
  return new Set(
    [...markdown.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) =>
      (m[1] as string)
        .trim()
        .toLowerCase()
        .replace(/[^\p{L}\p{N}\s_-]/gu, '')
        .replace(/\s/g, '-'),
    ),
  );
}
