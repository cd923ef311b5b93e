#!/usr/bin/env node
// `npm run stack`: API + worker + exporter as local processes against REDIS_URL, or against a
// private redis-server started here when none answers. Ctrl-C stops everything started here:
// the apps first, each with one SIGTERM and its full shutdown grace, then Redis.
//
// Each child runs in a process group of its own, so the terminal's Ctrl-C reaches only this
// script. Were the children in the terminal's group, they would get its SIGINT and then this
// script's SIGTERM: a worker takes a second signal during shutdown as "exit now", which cut its
// active jobs' grace short, and Redis went down while the apps were still finishing.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const children = [];
let stopping = false;
/** How long an app may take to stop before it is killed: the worker's shutdown grace and then some. */
const stopBoundMs = () => Number(process.env.SHUTDOWN_GRACE_MS || 30000) + 15000;

function reachable(url) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(port || 6379), hostname || '127.0.0.1');
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function waitReachable(url, ms) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await reachable(url)) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

function start(name, command, args, env) {
  const child = spawn(command, args, { cwd: root, env, stdio: ['ignore', 'inherit', 'inherit'], detached: true });
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`[stack] ${name} exited (${signal ?? code}); stopping the stack`);
      stop(1);
    }
  });
  children.push({ name, child });
  return child;
}

function stopChild(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', resolve);
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), stopBoundMs()).unref();
  });
}

async function stop(code) {
  if (stopping) return;
  stopping = true;
  const apps = children.filter(({ name }) => name !== 'redis');
  await Promise.all(apps.map(({ child }) => stopChild(child)));
  await Promise.all(children.filter(({ name }) => name === 'redis').map(({ child }) => stopChild(child)));
  process.exit(code);
}

/** AUTH_DISABLED as the apps read it (config.ts): only these values turn authentication off. */
function authDisabled(value) {
  return ['true', '1', 'yes'].includes(String(value ?? '').trim().toLowerCase());
}

async function main() {
  const env = { ...process.env };
  env.REDIS_URL = env.REDIS_URL || 'redis://127.0.0.1:6379';
  if (!(await reachable(env.REDIS_URL))) {
    if (spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status !== 0) {
      console.error(`[stack] no Redis answers at ${env.REDIS_URL} and redis-server is not installed.`);
      console.error('[stack] install it (Debian: apt-get install -y redis-server) or set REDIS_URL.');
      process.exit(1);
    }
    const dir = path.join(root, '.stack', 'redis');
    fs.mkdirSync(dir, { recursive: true });
    const port = new URL(env.REDIS_URL).port || '6379';
    console.log(`[stack] no Redis at ${env.REDIS_URL}: starting a private redis-server on port ${port} (data in ${dir})`);
    start('redis', 'redis-server', ['--port', port, '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes'], env);
    if (!(await waitReachable(env.REDIS_URL, 10000))) {
      console.error('[stack] the private redis-server did not start');
      stop(1);
      return;
    }
  }
  if (!env.API_KEYS && !env.API_KEYS_FILE && !authDisabled(env.AUTH_DISABLED)) {
    env.API_KEYS = 'demo:bullpen-demo-key';
    console.log('[stack] no API_KEYS set: using the demo key "bullpen-demo-key" for tenant "demo"');
  }
  const port = env.PORT || '3000';
  const exporterPort = env.EXPORTER_PORT || '9400';
  start('api', process.execPath, ['apps/api/dist/main.js'], env);
  start('worker', process.execPath, ['apps/worker/dist/main.js'], env);
  start('exporter', process.execPath, ['apps/exporter/dist/main.js'], env);

  const key = (env.API_KEYS || '').split(',')[0]?.split(':')[1] || '<your key>';
  console.log(`
[stack] running against ${env.REDIS_URL}
  API       http://localhost:${port}        (OpenAPI: http://localhost:${port}/openapi.json)
  exporter  http://localhost:${exporterPort}/healthz

Try:
  curl -s -X POST http://localhost:${port}/v1/lanes/tool_call/jobs \\
    -H 'Authorization: Bearer ${key}' -H 'Content-Type: application/json' \\
    -d '{"name":"sleep","data":{"ms":200}}'

Ctrl-C stops everything started here.
`);
}

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => void stop(0));
main().catch((err) => {
  console.error(err);
  stop(1);
});
