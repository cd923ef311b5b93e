// `bullpen` believes only the API's own answers: a proxy's HTML page (even with 200) is an error
// that names what came back, a request that got no answer is an outcome unknown rather than an
// API that cannot be reached, and an unreachable API is named with the reason. Stand-in servers
// play the proxy and the API that does not answer.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bullpen, startStandIn, type StandIn } from './support/cli';

const HTML = `<!DOCTYPE html><html><head><title>Welcome</title></head><body>${'<p>portal</p>'.repeat(200)}</body></html>`;

describe('bullpen and answers that are not the API’s', () => {
  let dir: string;
  let file: string;
  let standIn: StandIn | undefined;

  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-cli-answers-'));
    file = path.join(dir, 'jobs.jsonl');
    writeFileSync(file, '{"name":"noop"}\n{"name":"noop"}\n');
  });
  afterEach(async () => {
    await standIn?.close();
    standIn = undefined;
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 1 naming the content type when a proxy answers 200 with HTML, for every command', async () => {
    standIn = await startStandIn((_req, res) => res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(HTML));
    const env = { BULLPEN_API_URL: standIn.url, BULLPEN_API_KEY: 'k' };
    for (const args of [['enqueue', 'tool_call', 'noop'], ['job', 'tool_call', '1'], ['lanes'], ['dead', 'tool_call'], ['enqueue', 'tool_call', '--file', file]]) {
      const run = await bullpen(args, env);
      expect({ args, code: run.code, stdout: run.stdout }).toEqual({ args, code: 1, stdout: expect.not.stringContaining('<html>') });
      expect(run.stderr).toMatch(/unexpected answer \(200, text\/html; charset=utf-8\) from (GET|POST) http:\/\/127\.0\.0\.1:\d+\/v1\/.*: <!DOCTYPE html>/);
      // Shortened, and no stack trace.
      expect(run.stderr.length).toBeLessThan(1500);
      expect(run.stderr).not.toMatch(/TypeError|\n\s+at /);
    }
  });

  it('exits 1 when a bulk answer is JSON without a result for each job', async () => {
    standIn = await startStandIn((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    const run = await bullpen(['enqueue', 'tool_call', '--file', file], { BULLPEN_API_URL: standIn.url, BULLPEN_API_KEY: 'k' });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/unexpected answer to POST \/v1\/lanes\/tool_call\/jobs\/bulk: no result for each of the 2 jobs sent/);
    expect(run.stderr).not.toMatch(/TypeError|\n\s+at /);
  });

  it('quotes an error page shortened, with its content type', async () => {
    standIn = await startStandIn((_req, res) => res.writeHead(502, { 'content-type': 'text/html' }).end(HTML));
    const run = await bullpen(['lanes'], { BULLPEN_API_URL: standIn.url, BULLPEN_API_KEY: 'k' });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^bullpen: 502: \(text\/html\) <!DOCTYPE html>.*… \(\d+ characters\)\n$/);
  });

  it('reports a request that got no answer as an outcome unknown, not as an API it cannot reach', async () => {
    standIn = await startStandIn(() => undefined); // reads the request, never answers
    const env = { BULLPEN_API_URL: standIn.url, BULLPEN_API_KEY: 'k', BULLPEN_API_TIMEOUT_MS: '300' };
    const post = await bullpen(['enqueue', 'tool_call', 'noop'], env);
    expect(post.code).toBe(1);
    expect(post.stderr).toMatch(/no answer from POST http:\/\/127\.0\.0\.1:\d+\/v1\/lanes\/tool_call\/jobs within 0\.3 s .*the outcome is unknown: the job\(s\) may exist/);
    expect(post.stderr).not.toMatch(/cannot reach/);
    const get = await bullpen(['lanes'], env);
    expect(get.code).toBe(1);
    expect(get.stderr).toMatch(/no answer from GET .*\/v1\/lanes within 0\.3 s/);
    expect(standIn.requests.map((r) => r.method)).toEqual(['POST', 'GET']);
  });

  it('names why the API cannot be reached (exit 3)', async () => {
    standIn = await startStandIn(() => undefined);
    const closed = standIn.url;
    await standIn.close();
    standIn = undefined;
    const run = await bullpen(['enqueue', 'tool_call', 'noop'], { BULLPEN_API_URL: closed, BULLPEN_API_KEY: 'k' });
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/cannot reach the API at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED: /);
  });

  it('refuses a BULLPEN_API_URL that is not http(s), and a bad BULLPEN_API_TIMEOUT_MS (exit 2)', async () => {
    for (const url of ['localhost:3000', 'ftp://localhost:3000', 'not a url']) {
      const run = await bullpen(['lanes'], { BULLPEN_API_URL: url, BULLPEN_API_KEY: 'k' });
      expect({ url, code: run.code }).toEqual({ url, code: 2 });
      expect(run.stderr).toMatch(/BULLPEN_API_URL: expected an http:\/\/ or https:\/\/ URL/);
    }
    const timeout = await bullpen(['lanes'], { BULLPEN_API_TIMEOUT_MS: '1.5s', BULLPEN_API_KEY: 'k' });
    expect(timeout.code).toBe(2);
    expect(timeout.stderr).toMatch(/BULLPEN_API_TIMEOUT_MS: expected a whole number of milliseconds/);
  });
});
