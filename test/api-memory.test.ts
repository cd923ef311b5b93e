// Memory stays flat across 100,000 mixed requests (valid, invalid, unauthorised, over the limit)
// to an API process: a per-request leak of even a hundred bytes would show.
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { freePort } from './support/redis-server';
import { cleanupPrefix } from './support/config';
import { redisUrl, testPrefix, waitUntil } from './support/wait';

const MAIN = path.resolve(__dirname, '../apps/api/dist/main.js');
const KEY = 'memory-test-key-1';

const PROBE = path.resolve(__dirname, 'fixtures/preload/heap-probe.js');

/** The child's live heap after a full collection (see the heap-probe preload). */
async function heapAfterGc(child: ChildProcess, output: { text: string }): Promise<number> {
  const seen = output.text.length;
  child.kill('SIGUSR2');
  const line = await waitUntil(() => /heap-used (\d+)/.exec(output.text.slice(seen)), { what: 'the heap probe' });
  return Number(line[1]);
}

const BODIES: Array<{ path: string; body?: string; key?: string; type?: string }> = [
  { path: '/v1/lanes/tool_call/jobs', body: '{"name":"noop","data":{"a":1}}' },
  { path: '/v1/lanes/tool_call/jobs', body: '{"name":"noop","priority":-1}' },
  { path: '/v1/lanes/tool_call/jobs', body: '{"name":' },
  { path: '/v1/lanes/nope/jobs', body: '{"name":"noop"}' },
  { path: '/v1/lanes/tool_call/jobs', body: '{"name":"noop"}', key: 'wrong-key-000000' },
  { path: '/v1/lanes/tool_call/jobs', body: '{"name":"noop"}', type: 'text/plain' },
  { path: '/v1/lanes/tool_call/jobs/does-not-exist' },
  { path: '/v1/lanes/tool_call/jobs/bulk', body: JSON.stringify({ jobs: [{ name: 'noop' }, { name: 1 }] }) },
];

async function hammer(port: number, total: number, inFlight: number): Promise<Record<number, number>> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: inFlight });
  const statuses: Record<number, number> = {};
  let next = 0;
  const one = (i: number) =>
    new Promise<void>((resolve, reject) => {
      const spec = BODIES[i % BODIES.length] ?? BODIES[0]!;
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          path: spec.path,
          method: spec.body === undefined ? 'GET' : 'POST',
          agent,
          headers: {
            authorization: `Bearer ${spec.key ?? KEY}`,
            ...(spec.body === undefined ? {} : { 'content-type': spec.type ?? 'application/json' }),
          },
        },
        (res) => {
          statuses[res.statusCode ?? 0] = (statuses[res.statusCode ?? 0] ?? 0) + 1;
          res.resume();
          res.on('end', resolve);
        },
      );
      req.on('error', reject);
      req.end(spec.body);
    });
  const lane = async () => {
    while (next < total) await one(next++);
  };
  await Promise.all(Array.from({ length: inFlight }, lane));
  agent.destroy();
  return statuses;
}

describe('API memory', () => {
  let child: ChildProcess;
  let port: number;
  const output = { text: '' };
  const prefix = testPrefix('mem');

  beforeAll(async () => {
    port = await freePort();
    child = spawn(process.execPath, ['--expose-gc', '-r', PROBE, MAIN], {
      env: {
        PATH: process.env.PATH ?? '',
        REDIS_URL: redisUrl(),
        BULLPEN_PREFIX: prefix,
        PORT: String(port),
        HOST: '127.0.0.1',
        API_KEYS: `acme:${KEY}`,
        LOG_LEVEL: 'error',
      },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    child.stdout?.on('data', (d: Buffer) => (output.text += d.toString()));
    await waitUntil(async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.ok, { what: 'the API' });
  });
  afterAll(async () => {
    if (child.exitCode === null) {
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      });
    }
    await cleanupPrefix(prefix);
  });

  it('stays flat across 100,000 requests', async () => {
    await hammer(port, 10_000, 50); // warm-up: JIT, pools, the lane reaches its limit
    const before = await heapAfterGc(child, output);
    const statuses = await hammer(port, 100_000, 50);
    const after = await heapAfterGc(child, output);
    const total = Object.values(statuses).reduce((a, b) => a + b, 0);
    expect(total).toBe(100_000);
    expect(Object.keys(statuses).filter((s) => Number(s) >= 500)).toEqual([]);
    process.stdout.write(`api heap after gc: before ${(before / 2 ** 20).toFixed(1)} MiB, after 100k requests ${(after / 2 ** 20).toFixed(1)} MiB; statuses ${JSON.stringify(statuses)}\n`);
    // A leak of 100 bytes a request would be 10 MB; allow a few MB for caches that settle.
    expect(after - before).toBeLessThan(5 * 2 ** 20);
  }, 240_000);
});
