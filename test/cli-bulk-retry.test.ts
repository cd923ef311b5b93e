// `bullpen enqueue --file` sends a batch again after a refusal that enqueued nothing of it
// (api_overloaded, redis_unavailable, redis_full), and never after one whose outcome is unknown
// (redis_timeout). A stand-in API answers as the real one does in those cases (test/api-overload
// and test/api-outage hold the real API to those answers).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { run } from '../apps/cli/src/main';

interface StandIn {
  url: string;
  /** The body of every bulk request received, in order. */
  bodies: string[];
  close(): Promise<void>;
}

/** Refuses the first `refusals.length` bulk requests with those problem codes, then takes every job. */
async function startStandIn(refusals: string[]): Promise<StandIn> {
  const bodies: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      bodies.push(body);
      const code = refusals[bodies.length - 1];
      if (code) {
        res.writeHead(503, { 'content-type': 'application/problem+json', 'retry-after': '0' });
        res.end(JSON.stringify({ type: `urn:bullpen:problem:${code}`, title: code, status: 503, code, detail: code }));
        return;
      }
      const { jobs } = JSON.parse(body) as { jobs: unknown[] };
      const results = jobs.map((_, index) => ({ index, status: 'created', id: `job-${index}` }));
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ lane: 'tool_call', created: jobs.length, replayed: 0, rejected: 0, invalid: 0, results }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bodies,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('bullpen enqueue --file, when the API refuses a batch', () => {
  let dir: string;
  let file: string;
  let standIn: StandIn | undefined;

  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-cli-retry-'));
    file = path.join(dir, 'jobs.jsonl');
    writeFileSync(file, ['{"name":"noop"}', '{"name":"noop","data":{"n":2}}', '{"name":"noop"}'].join('\n'));
  });
  afterEach(async () => {
    await standIn?.close();
    standIn = undefined;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function enqueueFile(url: string) {
    const out: string[] = [];
    const err: string[] = [];
    const code = await run(['enqueue', 'tool_call', '--file', file], { BULLPEN_API_URL: url, BULLPEN_API_KEY: 'k' }, {
      out: (s) => out.push(s),
      err: (s) => err.push(s),
    });
    return { code, stdout: out.join('\n'), stderr: err.join('') };
  }

  it('sends it again after api_overloaded, redis_unavailable and redis_full, which enqueued nothing of it', async () => {
    standIn = await startStandIn(['api_overloaded', 'redis_unavailable', 'redis_full']);
    const result = await enqueueFile(standIn.url);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe('accepted 3, rejected 0');
    expect(result.stderr).toMatch(/api_overloaded, nothing of this batch was enqueued; sending it again in 0 s/);
    expect(result.stderr).toMatch(/redis_full, nothing of this batch was enqueued/);
    expect(standIn.bodies).toHaveLength(4);
    expect(new Set(standIn.bodies).size).toBe(1);
  });

  it('does not send it again after redis_timeout, whose jobs may exist', async () => {
    standIn = await startStandIn(['redis_timeout']);
    const result = await enqueueFile(standIn.url);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/503: redis_timeout/);
    expect(standIn.bodies).toHaveLength(1);
  });
});
