// `bullpen enqueue --file` accounts for every line: lines refused because the lane was full are sent
// again once it has room, each refused line is named, a file with a byte order mark loses no line,
// requests stay under the API's body limit (and a batch refused as too large is split), a run that
// stops says which lines were enqueued, and --idempotency-prefix makes a second run a replay.
// Against the real API and a worker; a stand-in API where the real one cannot be made to fail so.
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '@bullpen/core';
import { startTestApi, KEYS, type TestApi } from '../apps/api/test/harness';
import { builtinHandlers } from '../apps/worker/src/handlers';
import { HandlerRegistry } from '../apps/worker/src/registry';
import { WorkerRuntime } from '../apps/worker/src/runtime';
import { bullpen, startStandIn, type StandIn } from './support/cli';

const LANES = {
  lanes: {
    // Served by the worker below: a full lane drains.
    drained: { concurrency: 2, maxQueueSize: 5, attempts: 1 },
    // Served by no worker: a full lane stays full.
    critic: { concurrency: 1, maxQueueSize: 3 },
    big: { concurrency: 1, maxQueueSize: 100_000 },
  },
};

describe('bullpen enqueue --file', () => {
  let api: TestApi;
  let runtime: WorkerRuntime;
  let env: Record<string, string>;
  let dir: string;
  let standIn: StandIn | undefined;
  let files = 0;

  const file = (lines: string[] | string): string => {
    const name = path.join(dir, `jobs-${(files += 1)}.jsonl`);
    writeFileSync(name, typeof lines === 'string' ? lines : lines.join('\n'));
    return name;
  };

  beforeAll(async () => {
    api = await startTestApi({ lanesFile: LANES });
    runtime = new WorkerRuntime({
      config: api.config,
      logger: createLogger('worker', 'error'),
      registry: new HandlerRegistry().registerAll(builtinHandlers()),
      lanes: ['drained'],
    });
    await runtime.start();
    env = { BULLPEN_API_URL: api.url, BULLPEN_API_KEY: KEYS.acme };
    dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-cli-bulk-'));
  });
  afterEach(async () => {
    await standIn?.close();
    standIn = undefined;
  });
  afterAll(async () => {
    await runtime.close(2000);
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends lines refused because the lane was full again after Retry-After, until the lane has taken every one', async () => {
    const jobs = file(Array.from({ length: 20 }, () => '{"name":"sleep","data":{"ms":20}}'));
    const run = await bullpen(['enqueue', 'drained', '--file', jobs], env);
    expect(run.stdout).toBe('accepted 20, rejected 0\n');
    expect(run.code).toBe(0);
    expect(run.stderr).toMatch(/enqueue drained: lane drained is full: 15 lines wait for room, sent again every 1 s while the lane takes jobs/);
  });

  it('names each refused line with its reason and exits 5 once the lane has taken no job for --full-wait', async () => {
    const jobs = file(['{"name":"noop"}', '{"name":"noop"}', 'not json', '{"name":"9bad"}', '{"name":"noop"}', '{"name":"noop","data":{"n":6}}']);
    const run = await bullpen(['enqueue', 'critic', '--file', jobs, '--full-wait', '500ms'], env);
    expect(run.code).toBe(5);
    expect(run.stdout).toBe('accepted 3, rejected 3 (malformed_line: 1, validation_failed: 1, queue_full: 1)\n');
    expect(run.stderr).toMatch(/^line 3: malformed_line \(not JSON: Unexpected token/m);
    expect(run.stderr).toMatch(/^line 4: validation_failed \(name: expected a job name/m);
    expect(run.stderr).toMatch(/^line 6: queue_full \(lane critic took no job for 0\.5 s \(--full-wait\)\)$/m);
    // stderr is not a terminal here: no progress redrawn with \r.
    expect(run.stderr).not.toContain('\r');
    expect(await api.backlog('critic')).toBe(3);
  });

  it("names a refused line's fields as the line's own, not by its place in the bulk request", async () => {
    const jobs = file(['{"name":"noop"}', '{"name":"noop"}', '{"name":"noop"}', '{"name":"9bad"}', '{"name":"noop","colour":"red","data":{}}', '[1,2]']);
    const run = await bullpen(['enqueue', 'big', '--file', jobs, '--batch-size', '4'], env);
    expect(run.code).toBe(5);
    expect(run.stdout).toBe('accepted 3, rejected 3 (validation_failed: 3)\n');
    // Line 4 is the fourth job of the first request, lines 5 and 6 the first and second of the next.
    expect(run.stderr).toMatch(/^line 4: validation_failed \(name: expected a job name[^\n]*\)$/m);
    expect(run.stderr).toMatch(/^line 5: validation_failed \(colour: unknown field\)$/m);
    expect(run.stderr).toMatch(/^line 6: validation_failed \(expected a JSON object\)$/m);
    expect(run.stderr).not.toMatch(/jobs\[/);
  });

  it('names the first 20 refused lines and counts the rest', async () => {
    const jobs = file(Array.from({ length: 25 }, (_, i) => `{"name":"noop" ${i}`));
    const run = await bullpen(['enqueue', 'big', '--file', jobs], env);
    expect(run.code).toBe(5);
    expect(run.stdout).toBe('accepted 0, rejected 25 (malformed_line: 25)\n');
    expect(run.stderr.match(/^line \d+: malformed_line/gm)).toHaveLength(20);
    expect(run.stderr).toMatch(/^line 20: malformed_line/m);
    expect(run.stderr).toMatch(/^\.\.\. and 5 more lines refused$/m);
  });

  it('reads a file that starts with a UTF-8 byte order mark without losing its first line', async () => {
    const jobs = file('\uFEFF{"name":"noop"}\r\n{"name":"noop"}\r\n');
    const run = await bullpen(['enqueue', 'big', '--file', jobs], env);
    expect(run.stdout).toBe('accepted 2, rejected 0\n');
    expect(run.code).toBe(0);
  });

  const padded = (n: number, bytes: number) =>
    Array.from({ length: n }, (_, i) => JSON.stringify({ name: 'noop', data: { i, pad: 'x'.repeat(bytes) } }));

  it('keeps each request under the API body limit when jobs are large', async () => {
    // 700 jobs of 3 KB: 500 of them would be 1.5 MB, past the API's 1 MiB.
    const jobs = file(padded(700, 3000));
    const before = await api.backlog('big');
    const run = await bullpen(['enqueue', 'big', '--file', jobs], env);
    expect({ code: run.code, stdout: run.stdout, stderr: run.stderr }).toEqual({ code: 0, stdout: 'accepted 700, rejected 0\n', stderr: '' });
    expect(await api.backlog('big')).toBe(before + 700);
  });

  it('splits a batch the API refuses as too large, and names a line too large on its own', async () => {
    const lines = padded(700, 3000);
    lines.splice(350, 0, JSON.stringify({ name: 'noop', data: { pad: 'y'.repeat(1_200_000) } }));
    const jobs = file(lines);
    const before = await api.backlog('big');
    // Batches far over the API's limit: each is split until it fits.
    const run = await bullpen(['enqueue', 'big', '--file', jobs, '--batch-size', '1000', '--batch-bytes', '8m'], env);
    expect(run.code).toBe(5);
    expect(run.stdout).toBe('accepted 700, rejected 1 (payload_too_large: 1)\n');
    expect(run.stderr).toMatch(/^line 351: payload_too_large \(the line alone \(\d+ bytes\) is more than the API takes in one request\)$/m);
    expect(await api.backlog('big')).toBe(before + 700);
  });

  it('with --idempotency-prefix, replays the jobs of a second run of the same file instead of adding them again', async () => {
    const jobs = file(['{"name":"noop","data":{"n":1}}', '{"name":"noop","idempotencyKey":"own-key"}', '{}', '{"name":"noop"}']);
    const before = await api.backlog('big');
    const first = await bullpen(['enqueue', 'big', '--file', jobs, '--idempotency-prefix', 'import-7'], env);
    expect(first.stdout).toBe('accepted 3, rejected 1 (validation_failed: 1)\n');
    const second = await bullpen(['enqueue', 'big', '--file', jobs, '--idempotency-prefix', 'import-7'], env);
    // Every job was in already: the summary says so, rather than looking like 3 jobs added.
    expect(second.stdout).toBe('accepted 3 (replayed 3), rejected 1 (validation_failed: 1)\n');
    expect(await api.backlog('big')).toBe(before + 3);
    // The file grown by a line: only that line adds a job.
    appendFileSync(jobs, '\n{"name":"noop","data":{"n":5}}');
    const third = await bullpen(['enqueue', 'big', '--file', jobs, '--idempotency-prefix', 'import-7'], env);
    expect(third.stdout).toBe('accepted 4 (replayed 3), rejected 1 (validation_failed: 1)\n');
    expect(await api.backlog('big')).toBe(before + 4);
  });

  /** A stand-in API that takes every job of the first `good` bulk requests, then answers `fail`. */
  async function failingAfter(good: number, fail: { status: number; code: string }) {
    return startStandIn((req, res) => {
      const n = standIn?.requests.length ?? 0;
      if (n > good) {
        res.writeHead(fail.status, { 'content-type': 'application/problem+json', 'retry-after': '0' });
        res.end(JSON.stringify({ code: fail.code, title: fail.code, status: fail.status, detail: `a ${fail.code}` }));
        return;
      }
      const { jobs } = JSON.parse(req.body) as { jobs: unknown[] };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ results: jobs.map((_, index) => ({ index, status: 'created', id: `j${n}-${index}` })) }));
    });
  }

  it('says which lines were enqueued, which were not, and from which line nothing was sent when the API stops it', async () => {
    standIn = await failingAfter(2, { status: 500, code: 'internal' });
    const jobs = file(Array.from({ length: 10 }, () => '{"name":"noop"}'));
    const run = await bullpen(['enqueue', 'tool_call', '--file', jobs, '--batch-size', '3'], { BULLPEN_API_URL: standIn.url, BULLPEN_API_KEY: 'k' });
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('accepted 6, rejected 0\n');
    expect(run.stderr).toMatch(/stopped \(500: internal - a internal\)\n {2}enqueued: lines 1-6\n {2}not enqueued: lines 7-9\n {2}not sent: line 10 and after\n/);
  });

  it('says the lines of a batch whose outcome is unknown may be enqueued, and sends it again when every job has an idempotency key', async () => {
    standIn = await failingAfter(1, { status: 503, code: 'redis_timeout' });
    const jobs = file(Array.from({ length: 4 }, () => '{"name":"noop"}'));
    const target = { BULLPEN_API_URL: standIn.url, BULLPEN_API_KEY: 'k' };
    const run = await bullpen(['enqueue', 'tool_call', '--file', jobs, '--batch-size', '2'], target);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/enqueued: lines 1-2\n {2}may or may not be enqueued: lines 3-4\n {2}not sent: no line \(the file was read to its end\)\n/);
    expect(standIn.requests).toHaveLength(2);
    await standIn.close();

    // With keys, the batch is sent again, as it is, until the stand-in gives up (30 times).
    standIn = await failingAfter(1, { status: 503, code: 'redis_timeout' });
    const keyed = await bullpen(['enqueue', 'tool_call', '--file', jobs, '--batch-size', '2', '--idempotency-prefix', 'p'], { ...target, BULLPEN_API_URL: standIn.url });
    expect(keyed.code).toBe(1);
    expect(keyed.stderr).toMatch(/redis_timeout, its outcome is unknown, and each job has an idempotency key; sending it again in 0 s/);
    const bodies = standIn.requests.map((r) => r.body);
    expect(bodies).toHaveLength(32);
    expect(new Set(bodies.slice(1)).size).toBe(1);
    expect(bodies[1]).toBe('{"jobs":[{"idempotencyKey":"p:3","name":"noop"},{"idempotencyKey":"p:4","name":"noop"}]}');
  });

  it('sends each line as written, so that numbers JSON cannot hold exactly are not changed', async () => {
    standIn = await failingAfter(10, { status: 500, code: 'internal' });
    const line = '{"name":"noop","data":{"n":12345678901234567890,"x":1.0}}';
    const run = await bullpen(['enqueue', 'tool_call', '--file', file([line])], { BULLPEN_API_URL: standIn.url, BULLPEN_API_KEY: 'k' });
    expect(run.code).toBe(0);
    expect(standIn.requests[0]?.body).toBe(`{"jobs":[${line}]}`);
  });
});
