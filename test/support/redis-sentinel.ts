// Starts a private Sentinel setup: a master, a replica and one sentinel watching them (quorum 1),
// each a redis-server process on a free loopback port.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import IORedis from 'ioredis';
import { freePort, removeDir, startRedis, type RedisProcess } from './redis-server';
import { waitUntil } from './wait';

export const SENTINEL_MASTER = 'bullpen-test';

export interface RedisSentinelProcess {
  master: RedisProcess;
  replica: RedisProcess;
  /** REDIS_SENTINELS for the apps. */
  sentinelsEnv: string;
  /** The port the sentinel currently names as the master. */
  masterPort(): Promise<number>;
  stop(): Promise<void>;
}

export async function startRedisSentinel(): Promise<RedisSentinelProcess> {
  const master = await startRedis();
  const replica = await startRedis(['--replicaof', '127.0.0.1', String(master.port)]);
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-sentinel-'));
  const conf = path.join(dir, 'sentinel.conf');
  // Sentinel rewrites its own config file, so it gets one of its own.
  writeFileSync(
    conf,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${SENTINEL_MASTER} 127.0.0.1 ${master.port} 1`,
      `sentinel down-after-milliseconds ${SENTINEL_MASTER} 1000`,
      `sentinel failover-timeout ${SENTINEL_MASTER} 5000`,
      '',
    ].join('\n'),
  );
  const sentinel: ChildProcess = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
  const ask = async <T>(fn: (client: IORedis) => Promise<T>): Promise<T> => {
    const client = new IORedis(port, '127.0.0.1', { maxRetriesPerRequest: 1, lazyConnect: true });
    try {
      await client.connect();
      return await fn(client);
    } finally {
      client.disconnect();
    }
  };
  const masterPort = () =>
    ask(async (c) => Number(((await c.call('SENTINEL', 'get-master-addr-by-name', SENTINEL_MASTER)) as string[])[1]));
  const stop = async () => {
    if (sentinel.exitCode === null && sentinel.signalCode === null) {
      await new Promise<void>((resolve) => {
        sentinel.once('exit', () => resolve());
        sentinel.kill('SIGKILL');
      });
    }
    await Promise.all([master.stop(), replica.stop()]);
    for (const d of [dir, master.dir, replica.dir]) removeDir(d);
  };
  try {
    // Ready once the sentinel names the master and has found the replica through it.
    await waitUntil(
      () =>
        ask(async (c) => {
          const replicas = (await c.call('SENTINEL', 'replicas', SENTINEL_MASTER)) as unknown[];
          return (await masterPort()) === master.port && replicas.length === 1;
        }),
      { timeoutMs: 30_000, intervalMs: 100, what: 'the sentinel to see the master and its replica' },
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { master, replica, sentinelsEnv: `redis://127.0.0.1:${port}`, masterPort, stop };
}
