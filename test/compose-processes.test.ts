// "Compose as processes": every node service of docker-compose.yml runs as a local process with
// the environment Compose would give it (service names mapped to loopback, each declared port to a
// free local one), beside a real redis-server and a real Prometheus loaded with the repo's own
// scrape jobs and rules (targets rewritten the same way). Jobs submitted over REST must show up in
// Prometheus and in the exporter's event log (its path moved from the compose volume to a temporary
// folder): this proves the wiring, not only the syntax.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { parse } from 'yaml';
import { startRedis, freePort, type RedisProcess } from './support/redis-server';
import { RULE_FILES, startPrometheus, type PrometheusProcess, type ScrapeJob } from './support/prometheus';
import { cleanupPrefix } from './support/config';
import { waitUntil } from './support/wait';
import { startOtlpCollector, type OtlpCollector } from './support/otlp-collector';

const ROOT = path.resolve(__dirname, '..');
const PORT_VARIABLES: Record<string, string> = { api: 'PORT', exporter: 'EXPORTER_PORT', worker: 'WORKER_METRICS_PORT' };

interface Service {
  command?: string[];
  environment?: Record<string, string>;
  deploy?: { replicas?: number };
}

function resolvedServices(): Record<string, Service> {
  const run = spawnSync('docker-compose', ['-f', path.join(ROOT, 'docker-compose.yml'), 'config'], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '' },
  });
  if (run.status !== 0) throw new Error(`docker-compose config failed (apt-get install -y docker-compose): ${run.stderr ?? run.error}`);
  return (parse(run.stdout) as { services: Record<string, Service> }).services;
}

describe('the compose stack as local processes', () => {
  const services = resolvedServices();
  const children: Array<{ name: string; child: ChildProcess; output: string[] }> = [];
  let redis: RedisProcess;
  let prometheus: PrometheusProcess;
  let sink: OtlpCollector;
  /** `service:declaredPort` → local `127.0.0.1:port`, one entry per replica. */
  const addresses = new Map<string, string[]>();
  /** Where the compose volume for event logs is, on this machine. */
  const eventLogs = mkdtempSync(path.join(os.tmpdir(), 'bullpen-compose-events-'));
  /** The exporter's event log as compose configures it, moved into `eventLogs`. */
  let exporterEventLog = '';
  let apiUrl = '';
  let apiKey = '';
  let prefix = '';

  beforeAll(async () => {
    redis = await startRedis();
    sink = await startOtlpCollector();
    for (const name of ['api', 'worker', 'exporter']) {
      const service = services[name];
      if (!service?.environment) throw new Error(`compose service ${name} has no environment`);
      const replicas = service.deploy?.replicas ?? 1;
      const declared = service.environment[PORT_VARIABLES[name] ?? ''];
      if (!declared) throw new Error(`compose service ${name} declares no ${PORT_VARIABLES[name]}`);
      for (let i = 0; i < replicas; i += 1) {
        const port = await freePort();
        const key = `${name}:${declared}`;
        addresses.set(key, [...(addresses.get(key) ?? []), `127.0.0.1:${port}`]);
        const env: Record<string, string> = { PATH: process.env.PATH ?? '', ...service.environment };
        env.REDIS_URL = env.REDIS_URL?.replace('redis://redis:6379', redis.url) ?? '';
        env.OTEL_EXPORTER_OTLP_ENDPOINT = env.OTEL_EXPORTER_OTLP_ENDPOINT?.replace('http://otel-collector:4318', sink.url) ?? '';
        if (env.EVENT_LOG_FILE) {
          env.EVENT_LOG_FILE = path.join(eventLogs, `${name}-${i}-${path.basename(env.EVENT_LOG_FILE)}`);
          if (name === 'exporter') exporterEventLog = env.EVENT_LOG_FILE;
        }
        env[PORT_VARIABLES[name] ?? ''] = String(port);
        env.HOST = '127.0.0.1';
        env.WORKER_ID = `${name}-${i}`;
        env.LOG_LEVEL = 'warn';
        prefix = env.BULLPEN_PREFIX ?? 'bullpen';
        if (name === 'api') {
          apiUrl = `http://127.0.0.1:${port}`;
          apiKey = (env.API_KEYS ?? '').split(',')[0]?.split(':')[1] ?? '';
        }
        const [app] = service.command ?? [];
        const output: string[] = [];
        const child = spawn(process.execPath, [path.join(ROOT, `apps/${app}/dist/main.js`)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
        child.stdout?.on('data', (d: Buffer) => output.push(d.toString()));
        child.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
        children.push({ name: `${name}-${i}`, child, output });
      }
    }
    // The repo's scrape jobs, with each target rewritten to the process serving it.
    const config = parse(readFileSync(path.join(ROOT, 'prometheus/prometheus.yml'), 'utf8')) as {
      scrape_configs: Array<{ job_name: string; static_configs?: Array<{ targets: string[] }>; dns_sd_configs?: Array<{ names: string[]; port: number }> }>;
    };
    const jobs: ScrapeJob[] = [];
    for (const job of config.scrape_configs) {
      const declared = [
        ...(job.static_configs ?? []).flatMap((s) => s.targets),
        ...(job.dns_sd_configs ?? []).flatMap((d) => d.names.map((n) => `${n}:${d.port}`)),
      ];
      const targets = declared.flatMap((t) => addresses.get(t) ?? []);
      if (targets.length > 0) jobs.push({ job: job.job_name, targets });
    }
    prometheus = await startPrometheus({ jobs, ruleFiles: RULE_FILES });
    await waitUntil(async () => (await fetch(`${apiUrl}/readyz`).catch(() => undefined))?.ok, {
      timeoutMs: 30_000,
      what: `the API to be ready (${children.map((c) => c.output.join('')).join('\n')})`,
    });
  });

  afterAll(async () => {
    await Promise.all(
      children.map(
        ({ child }) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            child.once('exit', () => resolve());
            child.kill('SIGTERM');
          }),
      ),
    );
    await prometheus?.stop();
    await sink?.close();
    rmSync(eventLogs, { recursive: true, force: true });
    if (redis) {
      await cleanupPrefix(prefix, redis.url);
      await redis.stop();
    }
  });

  it('scrapes every target the repo configures, found at the addresses compose gives them', async () => {
    const up = await waitUntil(
      async () => {
        const v = await prometheus.vector('up == 1');
        return v.length === 4 ? v : undefined;
      },
      { timeoutMs: 30_000, what: 'api, exporter and both workers to be up in Prometheus' },
    );
    expect(up.map((s) => s.metric.job).sort()).toEqual(['bullpen-api', 'bullpen-exporter', 'bullpen-worker', 'bullpen-worker']);
  });

  it('runs jobs submitted over REST and shows them in Prometheus', async () => {
    const lanes = ['tool_call', 'file_read', 'critic'];
    const perLane = 20;
    for (const lane of lanes) {
      const res = await fetch(`${apiUrl}/v1/lanes/${lane}/jobs/bulk`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify({ jobs: Array.from({ length: perLane }, () => ({ name: 'sleep', data: { ms: 5 } })) }),
      });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { created: number }).created).toBe(perLane);
    }
    const completed = await waitUntil(
      async () => {
        const v = await prometheus.vector('sum by (lane) (bullpen_jobs_completed_total)');
        const byLane = Object.fromEntries(v.map((s) => [s.metric.lane, s.value]));
        return lanes.every((lane) => byLane[lane] === perLane) ? byLane : undefined;
      },
      { timeoutMs: 45_000, what: 'Prometheus to count every completed job' },
    );
    expect(completed).toMatchObject({ tool_call: perLane, file_read: perLane, critic: perLane });
    const enqueued = await prometheus.vector('sum(bullpen_jobs_enqueued_total)');
    expect(enqueued[0]?.value).toBe(lanes.length * perLane);
    // The API is scraped on its own schedule: wait for a scrape after the last request.
    const requests = await waitUntil(
      async () => {
        const v = await prometheus.vector('sum(bullpen_api_requests_total{route="/v1/lanes/:lane/jobs/bulk",status="200"})');
        return v[0]?.value === lanes.length ? v : undefined;
      },
      { timeoutMs: 15_000, what: 'Prometheus to scrape the API after the bulk requests' },
    );
    expect(requests[0]?.value).toBe(lanes.length);

    // The exporter writes the deployment's lifecycle events where compose puts its volume.
    expect(exporterEventLog).not.toBe('');
    const events = await waitUntil(
      () => {
        if (!existsSync(exporterEventLog)) return undefined;
        const lines = readFileSync(exporterEventLog, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { event: string; lane: string });
        const done = lines.filter((l) => l.event === 'completed');
        return done.length === lanes.length * perLane ? done : undefined;
      },
      { timeoutMs: 15_000, what: "the exporter's event log to hold every completed job" },
    );
    for (const lane of lanes) expect(events.filter((e) => e.lane === lane)).toHaveLength(perLane);
  });

  it('sends traces from the api and the workers to the OTLP endpoint compose configures', async () => {
    await waitUntil(
      () => {
        const services = new Set(sink.spans().map((s) => s.service));
        return services.has('bullpen-api') && services.has('bullpen-worker');
      },
      { timeoutMs: 30_000, what: 'spans from bullpen-api and bullpen-worker' },
    );
  });
});
