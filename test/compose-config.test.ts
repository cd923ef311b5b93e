// The compose stack's wiring, checked without a Docker engine: the file is valid, every app gets
// only variables it reads, every address between services agrees, every mounted file exists.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { assertAuthConfigured, CONFIG_VARIABLES, DEFAULT_LANES_PATH, DEMO_API_KEY, loadConfig, readsVariable, type AppName } from '@bullpen/core';
import { loadCliConfig } from '../apps/cli/src/config';

const ROOT = path.resolve(__dirname, '..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  /** `host_ip:published:target/proto` when bound to an address, else the long form. */
  ports?: Array<string | { host_ip?: string; published?: number | string; target?: number }>;
  volumes?: string[];
  container_name?: string;
  depends_on?: Record<string, { condition: string }>;
  deploy?: { replicas?: number };
  healthcheck?: unknown;
  stop_grace_period?: string;
}

/** The compose file as Compose itself resolves it (defaults interpolated, or `env`'s values). */
function resolvedCompose(env: Record<string, string> = {}): { services: Record<string, Service>; volumes?: Record<string, unknown> } {
  const run = spawnSync('docker-compose', ['-f', path.join(ROOT, 'docker-compose.yml'), 'config'], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '', ...env },
  });
  if (run.error) throw new Error(`docker-compose is needed to validate the compose file (apt-get install -y docker-compose): ${run.error.message}`);
  if (run.status !== 0) throw new Error(`docker-compose config failed:\n${run.stderr}`);
  return parse(run.stdout) as { services: Record<string, Service>; volumes?: Record<string, unknown> };
}

const compose = resolvedCompose();
const services = compose.services;
const APPS: AppName[] = ['api', 'worker', 'exporter'];
const hostPort = (url: string) => {
  const u = new URL(url);
  return `${u.hostname}:${u.port}`;
};
const env = (service: string): Record<string, string> => services[service]?.environment ?? {};
const prometheus = parse(read('prometheus/prometheus.yml')) as {
  scrape_configs: Array<{ job_name: string; static_configs?: Array<{ targets: string[] }>; dns_sd_configs?: Array<{ names: string[]; port: number }> }>;
  alerting?: { alertmanagers: Array<{ static_configs: Array<{ targets: string[] }> }> };
  rule_files: string[];
};
const targetsOf = (job: string) => prometheus.scrape_configs.find((j) => j.job_name === job);

describe('docker-compose.yml', () => {
  it('is valid for docker-compose and runs every service of the stack', () => {
    expect(Object.keys(services).sort()).toEqual(
      ['alertmanager', 'api', 'exporter', 'grafana', 'jaeger', 'otel-collector', 'prometheus', 'redis', 'worker'].sort(),
    );
  });

  it('gives each app only variables its configuration reads, and a configuration that loads', () => {
    for (const app of APPS) {
      const vars = env(app);
      for (const name of Object.keys(vars)) {
        expect({ app, name, read: readsVariable(app, name) }).toEqual({ app, name, read: true });
      }
      expect(vars.REDIS_URL).toBeDefined();
      // The configuration each app would start with (files resolved from the repo).
      expect(() => loadConfig(vars)).not.toThrow();
    }
    expect(env('api').API_KEYS).toBeTruthy();
  });

  it('reads no variable that is not in the documented list, in the apps and in the CLI', () => {
    /** The variables `load` reads from an environment in which none is set. */
    const readBy = (load: (env: Record<string, string | undefined>) => unknown): Set<string> => {
      const seen = new Set<string>();
      load(
        new Proxy({} as Record<string, string | undefined>, {
          get: (_t, key) => {
            if (typeof key === 'string') seen.add(key);
            return undefined;
          },
        }),
      );
      return seen;
    };
    for (const name of readBy(loadConfig)) expect({ name, known: name in CONFIG_VARIABLES }).toEqual({ name, known: true });
    // The CLI reads its environment in its own loadCliConfig, not in core's loadConfig.
    const cli = readBy(loadCliConfig);
    for (const name of cli) expect({ name, cli: readsVariable('cli', name) }).toEqual({ name, cli: true });
    const listedForCli = Object.keys(CONFIG_VARIABLES).filter((name) => readsVariable('cli', name));
    expect(listedForCli.sort()).toEqual([...cli].sort());
    const readme = read('README.md');
    for (const name of Object.keys(CONFIG_VARIABLES)) {
      expect({ name, documented: readme.includes(`\`${name}\``) }).toEqual({ name, documented: true });
    }
    // And the other way: every variable of the README's table is in the list.
    const section = readme.slice(readme.indexOf('\n## Configuration\n'));
    const table = section.slice(0, section.indexOf('\n#', 1));
    const rows = table.split('\n').filter((l) => /^\| `[A-Z]/.test(l));
    expect(rows.length).toBeGreaterThan(40);
    for (const row of rows) {
      const [, first = ''] = row.split('|');
      for (const [, name = ''] of first.matchAll(/`([A-Z][A-Z0-9_]+)`/g)) {
        expect({ name, listed: name in CONFIG_VARIABLES }).toEqual({ name, listed: true });
      }
    }
  });

  it('documents every variable the compose file takes from the environment in .env.example', () => {
    const raw = read('docker-compose.yml');
    const used = new Set([...raw.matchAll(/\$\{([A-Z0-9_]+)(?::?-[^}]*)?\}/g)].map((m) => m[1] as string));
    const example = read('.env.example');
    for (const name of used) expect({ name, documented: new RegExp(`^${name}=`, 'm').test(example) }).toEqual({ name, documented: true });
  });

  it('falls back to the public demo key only when API_KEYS is unset: an empty one stays empty, and the API refuses to start naming it', () => {
    // Unset: the README's first try works.
    for (const app of ['api', 'exporter']) expect(env(app).API_KEYS).toBe(`demo:${DEMO_API_KEY}`);
    // Set but empty (a CI secret that is missing, a value blanked in .env): no demo key, and no operator tenant `demo`.
    const blank = resolvedCompose({ API_KEYS: '' }).services;
    for (const app of ['api', 'exporter']) expect({ app, keys: blank[app]?.environment?.API_KEYS }).toEqual({ app, keys: '' });
    expect(JSON.stringify(blank)).not.toContain(DEMO_API_KEY);
    const config = loadConfig(blank.api?.environment ?? {});
    expect(config.apiKeys).toEqual([]);
    expect(() => assertAuthConfigured(config, config.apiKeys)).toThrow(/^API_KEYS: expected at least one tenant:key entry/);
    // Keys of one's own are passed on as given.
    expect(resolvedCompose({ API_KEYS: 'acme:acme-key-0000001' }).services.api?.environment?.API_KEYS).toBe('acme:acme-key-0000001');
  });

  it('points every app at the redis service, which keeps an AOF, has a memory limit and never evicts', () => {
    for (const app of APPS) expect(hostPort(env(app).REDIS_URL ?? '')).toBe('redis:6379');
    const command = (services.redis?.command ?? []).join(' ');
    expect(command).toMatch(/--appendonly yes/);
    expect(command).toMatch(/--appendfsync everysec/);
    expect(command).toMatch(/--maxmemory-policy noeviction/);
    // A limit, so that the API's refusal short of it (API_REDIS_MEMORY_LIMIT) has something to go by.
    expect(command).toMatch(/--maxmemory 1gb/);
    expect(services.redis?.healthcheck).toBeDefined();
    expect((services.redis?.volumes ?? []).join(' ')).toMatch(/:\/data/);
  });

  it('scrapes the api, the exporter and every worker replica on the ports the apps listen on', () => {
    expect(targetsOf('bullpen-api')?.static_configs?.[0]?.targets).toEqual([`api:${env('api').PORT}`]);
    expect(targetsOf('bullpen-exporter')?.static_configs?.[0]?.targets).toEqual([`exporter:${env('exporter').EXPORTER_PORT}`]);
    const workers = targetsOf('bullpen-worker')?.dns_sd_configs?.[0];
    expect(workers?.names).toEqual(['worker']);
    expect(String(workers?.port)).toBe(env('worker').WORKER_METRICS_PORT);
    expect(prometheus.alerting?.alertmanagers[0]?.static_configs[0]?.targets).toEqual(['alertmanager:9093']);
  });

  it("runs Prometheus without its lifecycle API, and publishes the observability ports on this machine's loopback only unless told", () => {
    // --web.enable-lifecycle lets any web page a user opens POST /-/quit to Prometheus.
    expect((services.prometheus?.command ?? []).filter((flag) => /^--web\.enable-(lifecycle|admin-api)/.test(flag))).toEqual([]);
    const hostsOf = (all: Record<string, Service>, name: string) =>
      (all[name]?.ports ?? []).map((port) => (typeof port === 'string' ? port.split(':').slice(0, -2).join(':') || '*' : (port.host_ip ?? '*')));
    const observability = ['exporter', 'prometheus', 'alertmanager', 'grafana', 'jaeger'];
    for (const name of observability) expect([name, hostsOf(services, name)]).toEqual([name, ['127.0.0.1']]);
    // The API is what clients call, from anywhere.
    expect(hostsOf(services, 'api')).toEqual(['*']);
    const open = resolvedCompose({ OBSERVABILITY_HOST: '0.0.0.0' }).services;
    for (const name of observability) expect([name, hostsOf(open, name)]).toEqual([name, ['0.0.0.0']]);
  });

  it('lets workers scale: no fixed names, no host ports, two replicas by default', () => {
    expect(services.worker?.container_name).toBeUndefined();
    expect(services.worker?.ports).toBeUndefined();
    expect(services.worker?.deploy?.replicas).toBe(2);
    for (const app of APPS) expect(services[app]?.depends_on?.redis?.condition).toBe('service_healthy');
  });

  it('gives a stopping worker longer than SHUTDOWN_GRACE_MS before it is killed, by default, in .env.example and when both are raised', () => {
    /** Compose's durations as the worker's milliseconds: 40s, 1m30s, 1500ms. */
    const ms = (duration: string | undefined) => {
      const parts = [...(duration ?? '').matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)];
      expect(parts.map((p) => p[0]).join('')).toBe(duration);
      return parts.reduce((sum, [, n, unit]) => sum + Number(n) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit as 'ms' | 's' | 'm' | 'h'], 0);
    };
    const example = Object.fromEntries([...read('.env.example').matchAll(/^([A-Z0-9_]+)=(.*)$/gm)].map((m) => [m[1], m[2]]));
    const raised = { SHUTDOWN_GRACE_MS: '120000', WORKER_STOP_GRACE_PERIOD: '2m10s' };
    for (const env of [{}, example, raised]) {
      const worker = resolvedCompose(env).services.worker;
      const grace = Number(worker?.environment?.SHUTDOWN_GRACE_MS);
      expect(grace).toBe(Number((env as Record<string, string>).SHUTDOWN_GRACE_MS ?? 30000));
      expect(ms(worker?.stop_grace_period)).toBeGreaterThanOrEqual(grace + 5000);
    }
    expect(resolvedCompose(raised).services.worker?.stop_grace_period).toBe('2m10s');
  });

  it('sends every app’s traces to the collector, and the collector to Jaeger', () => {
    const collector = parse(read('otel-collector/config.yaml')) as {
      receivers: { otlp: { protocols: { http: { endpoint: string } } } };
      exporters: Record<string, { endpoint: string }>;
    };
    const httpPort = collector.receivers.otlp.protocols.http.endpoint.split(':')[1];
    for (const app of APPS) {
      expect(hostPort(env(app).OTEL_EXPORTER_OTLP_ENDPOINT ?? '')).toBe(`otel-collector:${httpPort}`);
      expect(env(app).OTEL_SERVICE_NAME).toBe(`bullpen-${app}`);
    }
    expect(collector.exporters['otlp/jaeger']?.endpoint).toBe('jaeger:4317');
    expect(services.jaeger?.environment?.COLLECTOR_OTLP_ENABLED).toBe('true');
  });

  it('mounts only files that exist, where Prometheus and Grafana read them', () => {
    for (const [name, service] of Object.entries(services)) {
      for (const volume of service.volumes ?? []) {
        const [source] = volume.split(':');
        if (!source || !source.startsWith('/')) continue; // named volume
        expect({ service: name, source, exists: existsSync(source) }).toEqual({ service: name, source, exists: true });
      }
    }
    const grafana = services.grafana;
    const mounts = new Map((grafana?.volumes ?? []).map((v) => {
      const [source = '', target = ''] = v.split(':');
      return [path.relative(ROOT, source), target] as const;
    }));
    const provider = parse(read('grafana/provisioning/dashboards/bullpen.yml')) as { providers: Array<{ options: { path: string } }> };
    expect(mounts.get('grafana/dashboards')).toBe(provider.providers[0]?.options.path);
    expect(mounts.get('grafana/provisioning')).toBe('/etc/grafana/provisioning');
    const home = grafana?.environment?.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH ?? '';
    expect(path.dirname(home)).toBe(provider.providers[0]?.options.path);
    expect(existsSync(path.join(ROOT, 'grafana/dashboards', path.basename(home)))).toBe(true);
    const datasource = parse(read('grafana/provisioning/datasources/prometheus.yml')) as { datasources: Array<{ url: string }> };
    expect(hostPort(datasource.datasources[0]?.url ?? '')).toBe('prometheus:9090');
    const promMount = (services.prometheus?.volumes ?? []).find((v) => v.includes('/etc/prometheus'));
    expect(promMount && path.relative(ROOT, promMount.split(':')[0] ?? '')).toBe('prometheus');
    for (const rule of prometheus.rule_files) expect(existsSync(path.join(ROOT, 'prometheus', rule))).toBe(true);
    expect(grafana?.environment?.GF_SECURITY_ADMIN_PASSWORD).toBeTruthy();
  });

  it("keeps the exporter's event log on a named volume that the image's user owns", () => {
    const file = env('exporter').EVENT_LOG_FILE ?? '';
    expect(path.isAbsolute(file)).toBe(true);
    const mount = (services.exporter?.volumes ?? []).map((v) => v.split(':')).find(([, target]) => target === path.dirname(file));
    expect(mount?.[0]).toMatch(/^[a-z][a-z0-9_-]*$/); // a named volume, not a host path
    expect(Object.keys(compose.volumes ?? {})).toContain(mount?.[0]);
    // A new named volume takes the owner of the image's directory it is mounted on.
    const dockerfile = read('Dockerfile');
    expect(dockerfile).toMatch(new RegExp(`mkdir -p ${path.dirname(file)} && chown -R node:node`));
    expect(dockerfile.indexOf(`mkdir -p ${path.dirname(file)}`)).toBeLessThan(dockerfile.indexOf('USER node'));
  });

  it('builds one image with a non-root user, a health check and a small context', () => {
    const dockerfile = read('Dockerfile');
    expect(dockerfile).toMatch(/^USER node$/m);
    expect(dockerfile).toMatch(/^HEALTHCHECK /m);
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    const ignore = read('.dockerignore');
    for (const entry of ['**/node_modules', '.git', 'test']) expect(ignore).toContain(entry);
    for (const app of APPS) expect(services[app]?.command).toEqual([app]);
  });

  it("mounts the repository's config folder where every app reads its lanes file, so a new lane takes a restart, not a rebuild", () => {
    // The image's apps read config/lanes.json under their WORKDIR (DEFAULT_LANES_PATH).
    const dockerfile = read('Dockerfile');
    const workdirs = [...dockerfile.matchAll(/^WORKDIR (\S+)$/gm)].map((m) => m[1]);
    const workdir = workdirs[workdirs.length - 1] ?? '';
    expect(path.relative(path.join(ROOT, 'config'), path.dirname(DEFAULT_LANES_PATH))).toBe('');
    for (const app of APPS) {
      expect(env(app).LANES_FILE).toBeUndefined();
      const mount = (services[app]?.volumes ?? []).map((v) => v.split(':')).find(([, target]) => target === `${workdir}/config`);
      expect({ app, source: mount && path.relative(ROOT, mount[0] ?? '') }).toEqual({ app, source: 'config' });
    }
  });
});
