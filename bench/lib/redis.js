// The one Redis every measurement runs against: REDIS_URL when set (the bench writes only under
// its own bench-* prefixes and deletes them), else a private redis-server on a free port.
'use strict';
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const IORedis = require('ioredis');
const { until } = require('./wait');

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** A command connection; BullMQ's Worker and QueueEvents need maxRetriesPerRequest null. */
function connect(url, name) {
  const redis = new IORedis(url, { maxRetriesPerRequest: null, connectionName: name });
  redis.on('error', () => undefined);
  return redis;
}

/** ioredis options for a BullMQ Queue, Worker or QueueEvents that owns (and closes) its connections. */
function connectionOptions(url) {
  const u = new URL(url);
  return {
    host: u.hostname,
    port: Number(u.port || 6379),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.pathname.length > 1 ? { db: Number(u.pathname.slice(1)) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
    maxRetriesPerRequest: null,
  };
}

/** Errors surface on the commands that fail; a BullMQ 'error' event (Redis stopped on an abort)
 * must not print a stack. Returns the emitter. */
function quiet(emitter) {
  emitter.on('error', () => undefined);
  return emitter;
}

/** Opens REDIS_URL or starts redis-server under `children`; resolves with { url, owned, pid? }. */
async function openRedis(children, env = process.env) {
  if (env.REDIS_URL) return { url: env.REDIS_URL, owned: false };
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0) {
    throw new Error('the bench needs Redis: set REDIS_URL, or install redis-server (Debian: apt-get install -y redis-server)');
  }
  // A port found free can be taken before redis-server binds it (the suite runs the smoke bench
  // beside other tests): that server then exits, while whatever took the port may still answer.
  // So a start counts only once the server on the port is the one started on our directory.
  for (let tries = 1; ; tries += 1) {
    const port = await freePort();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bullpen-bench-redis-'));
    const server = children.spawn('redis-server', 'redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no',
    ]);
    server.exited.then(() => fs.rmSync(dir, { recursive: true, force: true }));
    const url = `redis://127.0.0.1:${port}`;
    const up = await until(() => (server.running ? answersFrom(url, dir) : 'exited'), 'redis-server to accept connections', 10_000, 25);
    if (up === true) return { url, owned: true, pid: server.pid };
    if (tries >= 5) throw new Error(`redis-server exited before it answered on ${port} (${tries} ports tried)`);
  }
}

/** Whether the Redis at `url` answers and is the one started on `dir` (its CONFIG dir). */
async function answersFrom(url, dir) {
  const probe = new IORedis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    const [, served] = await probe.config('GET', 'dir');
    return fs.realpathSync(served) === fs.realpathSync(dir) || undefined;
  } catch {
    return undefined;
  } finally {
    probe.disconnect();
  }
}

async function redisVersion(redis) {
  const info = await redis.info('server');
  return /^redis_version:(\S+)/m.exec(info)?.[1] ?? 'unknown';
}

/** Deletes every key under `prefix:`. */
async function deletePrefix(redis, prefix) {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 5000);
    cursor = next;
    if (keys.length) await redis.unlink(...keys);
  } while (cursor !== '0');
}

module.exports = { freePort, connect, connectionOptions, quiet, openRedis, redisVersion, deletePrefix };
