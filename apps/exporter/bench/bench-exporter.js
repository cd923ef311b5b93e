#!/usr/bin/env node
// Exporter benchmark (not a test; prints numbers). Build first: npx tsc -b apps/exporter.
//
//   node apps/exporter/bench/bench-exporter.js [--jobs 100000] [--waiting 1000000]
//
// 1. Throughput: fills the lane streams with the entries a real workload writes per job (BullMQ's
//    added, waiting, active, completed/failed, plus bullpen's bp:attempt; one job in ten fails
//    terminally, which costs the exporter a log lookup), then starts the exporter process and
//    times how long it takes to count them all — the events/s it sustains on one core.
// 2. Scrape latency: puts 1,000,000 waiting jobs across the lanes (ids LPUSHed in pipelines, only
//    the oldest job of each lane gets a hash), and times GET /metrics.
//
// Uses REDIS_URL when set (it writes under a bench-* prefix and deletes it afterwards), else starts
// a private redis-server on a free port.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const IORedis = require('ioredis');
const { exporterStateKey, jobKeys, laneEventsKey, laneStateKeys } = require('@bullpen/core');
const { deletePrefix } = require('../../../bench/lib/redis');

const ROOT = path.resolve(__dirname, '../../..');
const MAIN = path.join(ROOT, 'apps/exporter/dist/main.js');
const LANES = ['tool_call', 'file_read', 'file_write', 'critic', 'forecast_model'];

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}
const JOBS = arg('jobs', 100_000);
const WAITING = arg('waiting', 1_000_000);

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function until(probe, what, timeoutMs = 300_000, intervalMs = 20) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

async function privateRedis() {
  if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0) {
    throw new Error('set REDIS_URL or install redis-server (apt-get install -y redis-server)');
  }
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bullpen-bench-redis-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  const url = `redis://127.0.0.1:${port}`;
  const probe = new IORedis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  probe.on('error', () => undefined);
  await until(() => probe.connect().then(() => true, () => false), 'redis-server', 10_000, 50);
  probe.disconnect();
  return { url, stop: () => (child.kill('SIGKILL'), fs.rmSync(dir, { recursive: true, force: true })) };
}

function cpuSeconds(pid) {
  // utime + stime of /proc/<pid>/stat, in clock ticks (100 per second on Linux).
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function startExporter(env) {
  const port = await freePort();
  const child = spawn(process.execPath, [MAIN], {
    env: { PATH: process.env.PATH, HOST: '127.0.0.1', LOG_LEVEL: 'warn', ...env, EXPORTER_PORT: String(port) },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  await until(() => fetch(`${url}/healthz`).then((r) => r.ok, () => false), 'the exporter to listen', 20_000);
  return { child, url, stop: () => new Promise((r) => (child.once('exit', r), child.kill('SIGTERM'))) };
}

async function fillStreams(redis, prefix) {
  let entries = 0;
  const perLane = Math.ceil(JOBS / LANES.length);
  for (const lane of LANES) {
    const key = laneEventsKey(prefix, lane);
    for (let start = 0; start < perLane; start += 2000) {
      const p = redis.pipeline();
      for (let i = start; i < Math.min(perLane, start + 2000); i += 1) {
        const id = String(i + 1);
        const failed = i % 10 === 9;
        p.xadd(key, '*', 'event', 'added', 'jobId', id, 'name', 'noop');
        p.xadd(key, '*', 'event', 'waiting', 'jobId', id);
        p.xadd(key, '*', 'event', 'active', 'jobId', id, 'prev', 'waiting');
        p.xadd(key, '*', 'event', 'bp:attempt', 'jobId', id, 'name', 'noop', 'tenant', 'acme', 'attempt', '1',
          'outcome', failed ? 'failed' : 'completed', ...(failed ? ['errorClass', 'http_5xx'] : []), 'willRetry', '0',
          'runMs', String(5 + (i % 300)), 'waitMs', String(i % 50), 'worker', 'bench');
        if (failed) {
          p.rpush(jobKeys(prefix, lane, id).logs, JSON.stringify({ type: 'attempt', attempt: 1, errorClass: 'http_5xx' }));
          p.xadd(key, '*', 'event', 'failed', 'jobId', id, 'failedReason', 'bench', 'prev', 'active');
        } else {
          p.xadd(key, '*', 'event', 'completed', 'jobId', id, 'returnvalue', 'null', 'prev', 'active');
        }
        entries += 5;
      }
      await p.exec();
    }
  }
  return entries;
}

async function fillWaiting(redis, prefix) {
  const perLane = Math.ceil(WAITING / LANES.length);
  const now = Date.now();
  for (const lane of LANES) {
    const wait = laneStateKeys(prefix, lane).wait;
    for (let start = 0; start < perLane; start += 10_000) {
      const ids = [];
      for (let i = start; i < Math.min(perLane, start + 10_000); i += 1) ids.push(`w${i}`);
      await redis.lpush(wait, ...ids); // LPUSH: the first id ends at the tail, where the oldest waits
    }
    await redis.hset(jobKeys(prefix, lane, 'w0').job, 'name', 'noop', 'timestamp', String(now - 3_600_000), 'data', '{}');
  }
  return perLane * LANES.length;
}

/** GET over a kept-alive connection, as Prometheus scrapes. */
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function get(url) {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function main() {
  if (!fs.existsSync(MAIN)) throw new Error(`${MAIN} is missing: build first (npx tsc -b apps/exporter)`);
  const own = process.env.REDIS_URL ? undefined : await privateRedis();
  const url = process.env.REDIS_URL || own.url;
  const redis = new IORedis(url);
  const prefix = `bench-${process.pid}`;
  const env = { REDIS_URL: url, BULLPEN_PREFIX: prefix };
  try {
    console.log(`node ${process.version}, ${os.cpus()[0].model}, ${os.cpus().length} cpus; Redis at ${url}`);

    // 1. Throughput.
    let t = Date.now();
    const entries = await fillStreams(redis, prefix);
    console.log(`filled ${LANES.length} lane streams with ${entries} entries (${JOBS} jobs) in ${Date.now() - t} ms`);
    t = Date.now();
    const exporter = await startExporter(env);
    const cpuStart = cpuSeconds(exporter.child.pid);
    const readAll = async () => {
      const reads = await Promise.all(LANES.map((lane) => redis.hget(exporterStateKey(prefix, lane), 'read')));
      return reads.reduce((a, r) => a + Number(r || 0), 0) >= entries;
    };
    await until(readAll, 'every entry to be counted', 600_000, 10);
    const seconds = (Date.now() - t) / 1000;
    const cpu = cpuSeconds(exporter.child.pid) - cpuStart;
    const text = await (await fetch(`${exporter.url}/metrics`)).text();
    const completed = [...text.matchAll(/^bullpen_jobs_completed_total\{[^}]*\} (\d+)/gm)].reduce((a, m) => a + Number(m[1]), 0);
    const failed = [...text.matchAll(/^bullpen_jobs_failed_total\{[^}]*\} (\d+)/gm)].reduce((a, m) => a + Number(m[1]), 0);
    console.log(
      `throughput: ${entries} entries counted in ${seconds.toFixed(2)} s (from process start) = ${Math.round(entries / seconds)} events/s; ` +
        `exporter CPU ${cpu.toFixed(2)} s (${((100 * cpu) / seconds).toFixed(0)}% of one core); ` +
        `completed ${completed}, failed ${failed} (expected ${JOBS - JOBS / 10} and ${JOBS / 10})`,
    );
    await exporter.stop();

    // 2. Scrape latency with a long backlog.
    t = Date.now();
    const waiting = await fillWaiting(redis, prefix);
    console.log(`added ${waiting} waiting job ids across ${LANES.length} lanes in ${Date.now() - t} ms`);
    const scraper = await startExporter(env);
    for (let i = 0; i < 20; i += 1) await get(`${scraper.url}/metrics`); // warm-up: scripts loaded, code optimised
    const times = [];
    let body = '';
    for (let i = 0; i < 300; i += 1) {
      const start = process.hrtime.bigint();
      body = await get(`${scraper.url}/metrics`);
      times.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
    times.sort((a, b) => a - b);
    const waitingSeries = [...body.matchAll(/^bullpen_queue_jobs\{lane="[^"]+",state="waiting"\} (\d+)/gm)].reduce((a, m) => a + Number(m[1]), 0);
    const oldest = /^bullpen_queue_oldest_waiting_timestamp_seconds\{lane="tool_call"\} (\S+)/m.exec(body)?.[1];
    const redisPart = /^bullpen_exporter_scrape_duration_seconds (\S+)/m.exec(body)?.[1];
    console.log(
      `/metrics with ${waitingSeries} waiting jobs: p50 ${quantile(times, 0.5).toFixed(1)} ms, p95 ${quantile(times, 0.95).toFixed(1)} ms, ` +
        `p99 ${quantile(times, 0.99).toFixed(1)} ms, max ${times[times.length - 1].toFixed(1)} ms over ${times.length} scrapes; ` +
        `Redis part of the last scrape ${(Number(redisPart) * 1000).toFixed(2)} ms; ${body.length} bytes; oldest tool_call ${oldest}`,
    );
    await scraper.stop();
    agent.destroy();
  } finally {
    await deletePrefix(redis, prefix);
    redis.disconnect();
    own?.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
