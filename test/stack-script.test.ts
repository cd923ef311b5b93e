// `npm run stack` (scripts/stack.js) as a user runs it from a terminal: Ctrl-C sends SIGINT to the
// terminal's whole process group, and the stack must stop each app once, with its full shutdown
// grace, so a job that is running finishes.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import IORedis from 'ioredis';
import { Queue } from 'bullmq';
import { lanePrefix } from '@bullpen/core';
import { freePort, startRedis, type RedisProcess } from './support/redis-server';
import { testPrefix, waitUntil } from './support/wait';

const ROOT = path.resolve(__dirname, '..');
const LANE = 'tool_call';
const DEMO_KEY = 'bullpen-demo-key';

describe('npm run stack', () => {
  let redis: RedisProcess;
  let stack: ChildProcess | undefined;

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterAll(async () => {
    if (stack?.pid && stack.exitCode === null) process.kill(-stack.pid, 'SIGKILL');
    await redis.stop();
  });

  it('starts with AUTH_DISABLED=false and the demo key, and on Ctrl-C lets a running job finish before it stops', async () => {
    const prefix = testPrefix('stack');
    const port = await freePort();
    const env = {
      ...process.env,
      REDIS_URL: redis.url,
      BULLPEN_PREFIX: prefix,
      AUTH_DISABLED: 'false',
      API_KEYS: '',
      PORT: String(port),
      EXPORTER_PORT: String(await freePort()),
      WORKER_METRICS_PORT: '0',
      SHUTDOWN_GRACE_MS: '20000',
      LOG_LEVEL: 'info',
    };
    // Detached: the script leads a process group of its own, as a shell's foreground job does.
    stack = spawn(process.execPath, [path.join(ROOT, 'scripts/stack.js')], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    stack.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    stack.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => stack?.once('exit', (code) => resolve(code)));

    const base = `http://127.0.0.1:${port}`;
    await waitUntil(async () => (await fetch(`${base}/readyz`)).ok, { timeoutMs: 30_000, what: `the stack's API to be ready; output so far:\n${output}` });
    const submitted = await fetch(`${base}/v1/lanes/${LANE}/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${DEMO_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'sleep', data: { ms: 3000 } }),
    });
    expect(submitted.status).toBe(201);
    const { id } = (await submitted.json()) as { id: string };
    await waitUntil(
      async () => {
        const res = await fetch(`${base}/v1/lanes/${LANE}/jobs/${id}`, { headers: { authorization: `Bearer ${DEMO_KEY}` } });
        return ((await res.json()) as { state?: string }).state === 'active';
      },
      { what: 'the job to run' },
    );

    // Ctrl-C: SIGINT to the foreground process group.
    process.kill(-(stack.pid as number), 'SIGINT');
    expect(await exited).toBe(0);

    expect(output).not.toMatch(/second signal during shutdown/);
    expect(output).toMatch(/using the demo key/);
    // The stack stopped its apps before Redis (here it did not start Redis), and the worker let
    // the job finish within its grace.
    const connection = new IORedis(redis.url, { maxRetriesPerRequest: null });
    const queue = new Queue(LANE, { connection, prefix: lanePrefix(prefix, LANE) });
    try {
      expect(await queue.getJobState(id)).toBe('completed');
    } finally {
      await queue.close();
      connection.disconnect();
    }
  }, 90_000);
});
