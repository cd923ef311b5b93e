// Starts a private redis-server on a free loopback port in a temp directory.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

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

function waitForPort(port: number, deadlineMs: number): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve();
      });
      socket.once('error', () => {
        socket.destroy();
        if (Date.now() > deadline) reject(new Error(`redis-server did not listen on ${port}`));
        else setTimeout(attempt, 25);
      });
    };
    attempt();
  });
}

export async function startRedis(extraArgs: readonly string[] = []): Promise<RedisProcess> {
  if (!hasRedisServer()) throw new Error(NO_REDIS_MESSAGE);
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', ...extraArgs];
  const launch = async (): Promise<ChildProcess> => {
    const child = spawn('redis-server', args, { stdio: 'ignore' });
    await waitForPort(port, 10_000);
    return child;
  };
  const proc: RedisProcess = {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    child: await launch(),
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
      proc.child = await launch();
    },
  };
  return proc;
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
