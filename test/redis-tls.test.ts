// Redis over TLS, as managed services offer it: `rediss://` URLs, with the server's certificate
// issued by a private CA that the apps are given with Node's NODE_EXTRA_CA_CERTS. Without the CA
// every app must say that it does not trust the certificate, not merely that it is reconnecting.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeLanesFile } from './fixtures/worker-process';
import { spawnApi, spawnExporter, spawnWorkerApp, type AppProcess, type LogCondition } from './support/prometheus';
import { freePort, removeDir, startRedis, type RedisProcess } from './support/redis-server';
import { testPrefix, waitUntil } from './support/wait';

const KEY = 'tls-test-key';

function openssl(args: string[], cwd: string): void {
  const run = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (run.error) throw new Error(`openssl is needed for this test (Debian: apt-get install -y openssl): ${run.error.message}`);
  if (run.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${run.stderr}`);
}

/** A CA and a server certificate it signed, for 127.0.0.1 and localhost. */
function makeCertificates(dir: string): void {
  openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=bullpen test CA'], dir);
  openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=localhost'], dir);
  writeFileSync(path.join(dir, 'san.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl(
    ['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'san.cnf'],
    dir,
  );
}

describe('bullpen against a Redis that speaks TLS', () => {
  const lanesFile = writeLanesFile({ lanes: { work: { concurrency: 2 } } });
  const certs = mkdtempSync(path.join(os.tmpdir(), 'bullpen-tls-'));
  let redis: RedisProcess;
  let tlsPort = 0;
  const apps: AppProcess[] = [];

  beforeAll(async () => {
    makeCertificates(certs);
    // The plain port stays open for the test's own checks; the apps use the TLS one.
    redis = await startRedis(async () => {
      tlsPort = await freePort();
      return [
        '--tls-port', String(tlsPort),
        '--tls-cert-file', path.join(certs, 'server.pem'),
        '--tls-key-file', path.join(certs, 'server.key'),
        '--tls-ca-cert-file', path.join(certs, 'ca.pem'),
        '--tls-auth-clients', 'no',
      ];
    });
  });

  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.kill('SIGKILL')));
  });

  afterAll(async () => {
    await redis?.stop();
    if (redis) removeDir(redis.dir);
    rmSync(certs, { recursive: true, force: true });
    lanesFile.cleanup();
  });

  const env = (extra: Record<string, string> = {}) => ({
    REDIS_URL: `rediss://127.0.0.1:${tlsPort}`,
    BULLPEN_PREFIX: testPrefix('tls'),
    LANES_FILE: lanesFile.file,
    API_KEYS: `acme:${KEY}`,
    ...extra,
  });

  async function submit(api: AppProcess) {
    const res = await fetch(`${api.url}/v1/lanes/work/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'noop' }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  it('runs jobs end to end over rediss:// with a private CA from NODE_EXTRA_CA_CERTS', async () => {
    const trusted = env({ NODE_EXTRA_CA_CERTS: path.join(certs, 'ca.pem') });
    const [api, worker, exporter] = await Promise.all([spawnApi(trusted), spawnWorkerApp(trusted), spawnExporter(trusted)]);
    apps.push(api, worker, exporter);
    const accepted = await submit(api);
    expect(accepted.status).toBe(201);
    await waitUntil(
      async () => {
        const samples = await exporter.samples();
        return samples.some((s) => s.name === 'bullpen_jobs_completed_total' && s.labels.lane === 'work' && s.value === 1);
      },
      { what: 'the job to complete and be counted' },
    );
    expect((await exporter.samples()).find((s) => s.name === 'bullpen_exporter_redis_up')?.value).toBe(1);
  }, 60_000);

  it('says it does not trust the certificate when the CA is not given', async () => {
    const unreachable: LogCondition = (logs) => logs.some((l) => l.msg === 'cannot reach redis');
    const untrusted = env();
    const [api, worker, exporter] = await Promise.all([
      spawnApi(untrusted, undefined, { until: unreachable }),
      spawnWorkerApp(untrusted, undefined, { until: unreachable }),
      spawnExporter(untrusted, undefined, { until: unreachable }),
    ]);
    apps.push(api, worker, exporter);
    for (const app of [api, worker, exporter]) {
      expect(app.logs().find((l) => l.msg === 'cannot reach redis')?.error).toMatch(/self[- ]signed certificate/);
    }
    const refused = await submit(api);
    expect(refused.status).toBe(503);
    expect(refused.body.detail).toMatch(/^Redis is (reconnecting|connecting): self[- ]signed certificate/);
  }, 60_000);

  it('says that a rediss:// URL may name a port that does not speak TLS, rather than only that it timed out', async () => {
    // The plain port takes the TLS handshake for the start of a command and never answers it.
    const unreachable: LogCondition = (logs) => logs.some((l) => l.msg === 'cannot reach redis');
    const api = await spawnApi({ ...env(), REDIS_URL: `rediss://127.0.0.1:${redis.port}` }, undefined, { until: unreachable });
    apps.push(api);
    const hint = /ETIMEDOUT \(the URL is rediss:\/\/: if this Redis port does not speak TLS, it never answers the TLS handshake; use redis:\/\/ for it\)/;
    expect(api.logs().find((l) => l.msg === 'cannot reach redis')?.error).toMatch(hint);
    const refused = await submit(api);
    expect(refused.status).toBe(503);
    expect(refused.body.detail).toMatch(hint);
  }, 60_000);
});
