// Starts a private redis-server on a free loopback port in a temp directory.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import IORedis from 'ioredis';
import { waitUntil } from './wait';

export interface RedisProcess {
  url: string;
  port: number;
  dir: string;
  child: ChildProcess;
  /** Kills it hard (SIGKILL, as a crash would) and waits for it to exit. */
  stop(): Promise<void>;
  /** Start again on the same port and directory (for outage tests). */
  restart(): Promise<void>;
}

export const NO_REDIS_MESSAGE =
  'Integration tests need Redis: install redis-server (Debian: apt-get install -y redis-server) ' +
  'so the tests can start their own, or set REDIS_URL to a Redis they may write to.';

/**
 * Extra startRedis arguments for a Redis that loses nothing it acknowledged when it is killed:
 * every write is in the append-only file, fsynced, before Redis answers it; a restart on the same
 * directory replays it.
 */
export const APPEND_ONLY_ALWAYS: readonly string[] = ['--appendonly', 'yes', '--appendfsync', 'always'];

export function hasRedisServer(): boolean {
  return spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Whether the Redis answering on `port` is the one started on `dir` (its CONFIG dir). */
async function answersAs(port: number, dir: string): Promise<boolean> {
  const client = new IORedis(port, '127.0.0.1', {
    lazyConnect: true,
    enableReadyCheck: false, // its INFO may be renamed away (api-lane-registry.test.ts)
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    enableOfflineQueue: false,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const reply = (await client.config('GET', 'dir')) as string[];
    return reply[1] === dir;
  } finally {
    client.disconnect();
  }
}

/**
 * Resolves once the redis-server `child` answers on `port` as itself; rejects if it exits first.
 * A free port can be taken again between freePort() and the spawn (by a parallel test's own probe
 * or server): the spawned Redis then fails to bind and exits, while whatever holds the port may
 * still accept a connection.
 */
async function waitForOwnRedis(child: ChildProcess, port: number, dir: string, timeoutMs: number): Promise<void> {
  let exited = child.exitCode !== null || child.signalCode !== null;
  const onExit = () => (exited = true);
  child.once('exit', onExit);
  try {
    const outcome = await waitUntil(async () => (exited ? 'exited' : (await answersAs(port, dir)) && !exited && 'up'), {
      timeoutMs,
      intervalMs: 25,
      what: `redis-server to answer on ${port}`,
    });
    if (outcome === 'exited') throw new Error(`redis-server exited before it answered on ${port} (was the port taken?)`);
  } finally {
    child.off('exit', onExit);
  }
}

const START_TRIES = 5;

/**
 * `extraArgs` may be a function, called again for each port a first start tries: arguments that
 * name ports of their own (a cluster node's bus port) are then picked afresh along with its port.
 */
export async function startRedis(extraArgs: readonly string[] | (() => Promise<readonly string[]>) = []): Promise<RedisProcess> {
  if (!hasRedisServer()) throw new Error(NO_REDIS_MESSAGE);
  const dir = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'bullpen-redis-')));
  const launch = async (port: number, extra: readonly string[]): Promise<ChildProcess> => {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', ...extra];
    const child = spawn('redis-server', args, { stdio: 'ignore' });
    try {
      await waitForOwnRedis(child, port, dir, 10_000);
      return child;
    } catch (err) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      throw err;
    }
  };
  // A first start that lost its port tries another; a restart must keep its ports.
  let port = 0;
  let extra: readonly string[] = [];
  let child: ChildProcess | undefined;
  for (let tries = 1; !child; tries += 1) {
    port = await freePort();
    extra = typeof extraArgs === 'function' ? await extraArgs() : extraArgs;
    try {
      child = await launch(port, extra);
    } catch (err) {
      if (tries >= START_TRIES) {
        removeDir(dir);
        throw err;
      }
    }
  }
  const proc: RedisProcess = {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    child,
    async stop() {
      const child = proc.child;
      if (child.exitCode !== null || child.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      });
    },
    async restart() {
      await proc.stop();
      proc.child = await launch(port, extra);
    },
  };
  return proc;
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
