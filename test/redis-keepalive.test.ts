// Firewalls, NAT gateways and load balancers drop a TCP connection idle for a few minutes; an API
// with nothing to do then meets a reset or silence on its next request. Every connection of every
// app sends TCP keepalive probes after 30 s idle (ioredis alone waits the system's 2 hours), read
// here from the kernel's own view of the sockets (`ss -o`).
import { spawnSync } from 'node:child_process';
import { TCP_KEEPALIVE_MS } from '@bullpen/core';
import { writeLanesFile } from './fixtures/worker-process';
import { spawnApi, spawnExporter, spawnWorkerApp, type AppProcess } from './support/prometheus';
import { removeDir, startRedis, type RedisProcess } from './support/redis-server';
import { testPrefix, waitUntil } from './support/wait';

/** Each established connection to `port`: the pid that owns it and its keepalive timer in seconds, if any. */
function connectionsTo(port: number): Array<{ pid: number; keepaliveSeconds: number | undefined }> {
  const ss = spawnSync('ss', ['-tnopH', 'state', 'established', `( dport = :${port} )`], { encoding: 'utf8' });
  if (ss.error) throw new Error(`ss is needed for this test (Debian: apt-get install -y iproute2): ${ss.error.message}`);
  return ss.stdout
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      const pid = Number(/pid=(\d+)/.exec(line)?.[1]);
      // e.g. timer:(keepalive,28sec,0), or timer:(keepalive,119min,0) with the system's default.
      const timer = /timer:\(keepalive,(?:(\d+)min)?(?:(\d+)(?:\.\d+)?sec)?(?:(\d+)ms)?,/.exec(line);
      const keepaliveSeconds = timer ? Number(timer[1] ?? 0) * 60 + Number(timer[2] ?? 0) + Number(timer[3] ?? 0) / 1000 : undefined;
      return { pid, keepaliveSeconds };
    });
}

describe('connections to Redis', () => {
  const lanesFile = writeLanesFile({ lanes: { work: { concurrency: 2 } } });
  let redis: RedisProcess;
  const apps: AppProcess[] = [];

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterAll(async () => {
    await Promise.all(apps.map((app) => app.kill('SIGKILL')));
    await redis?.stop();
    if (redis) removeDir(redis.dir);
    lanesFile.cleanup();
  });

  it('send TCP keepalive probes after 30 s idle, from every app', async () => {
    const env = { REDIS_URL: redis.url, BULLPEN_PREFIX: testPrefix('keepalive'), LANES_FILE: lanesFile.file, API_KEYS: 'acme:keepalive-key' };
    apps.push(...(await Promise.all([spawnApi(env), spawnWorkerApp(env), spawnExporter(env)])));
    // A socket with a request in flight shows its retransmission timer instead (`timer:(on,…)`),
    // and the workers' blocking fetches go out every second: read until every one shows its
    // keepalive timer at once.
    const ownedByApps = (c: { pid: number }) => apps.some((app) => app.pid === c.pid);
    await waitUntil(() => connectionsTo(redis.port).filter(ownedByApps).every((c) => c.keepaliveSeconds !== undefined), {
      timeoutMs: 10_000,
      what: 'every connection of the apps to show its keepalive timer',
    }).catch(() => undefined);
    const connections = connectionsTo(redis.port);
    for (const app of apps) {
      const own = connections.filter((c) => c.pid === app.pid);
      expect(own.length).toBeGreaterThan(0);
      for (const c of own) {
        expect(c.keepaliveSeconds).toBeDefined();
        expect(c.keepaliveSeconds!).toBeLessThanOrEqual(TCP_KEEPALIVE_MS / 1000);
      }
    }
  }, 90_000);
});
