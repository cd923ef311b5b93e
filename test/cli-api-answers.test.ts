// `bullpen` believes only the API's own answers: a proxy's HTML page (even with 200) is an error
// that names what came back, a request that got no answer is an outcome unknown rather than an
// API that cannot be reached, and an unreachable API is named with the reason. Stand-in servers
// play the proxy and the API that does not answer.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bullpen, startStandIn, type StandIn } from './support/cli';
import { waitUntil } from './support/wait';

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

  it('names an error page, or an error that is not a problem document, as an unexpected answer quoted shortened (exit 1, 4 for 401 and 403)', async () => {
    const pages: Array<{ status: number; type: string; body: string; code: number }> = [
      { status: 404, type: 'text/html;charset=utf-8', body: HTML, code: 1 },
      { status: 502, type: 'text/html', body: HTML, code: 1 },
      { status: 500, type: 'text/plain', body: 'Internal Server Error', code: 1 },
      { status: 500, type: 'application/json', body: '{"message":"upstream failed"}', code: 1 },
      { status: 401, type: 'text/html', body: HTML, code: 4 },
      { status: 403, type: 'application/json', body: '{"error":"forbidden"}', code: 4 },
    ];
    for (const page of pages) {
      standIn = await startStandIn((_req, res) => res.writeHead(page.status, { 'content-type': page.type }).end(page.body));
      const run = await bullpen(['lanes'], { BULLPEN_API_URL: standIn.url, BULLPEN_API_KEY: 'k' });
      const start = `bullpen: unexpected answer (${page.status}, ${page.type}) from GET ${standIn.url}/v1/lanes: ${page.body.slice(0, 15)}`;
      expect({ page: page.status, code: run.code, start: run.stderr.slice(0, start.length) }).toEqual({ page: page.status, code: page.code, start });
      if (page.body === HTML) expect(run.stderr).toMatch(/… \(\d+ characters\)\n$/);
      await standIn.close();
      standIn = undefined;
    }
  });

  it("splits a bulk request a proxy refuses as too large with its own 413 page", async () => {
    // The proxy takes bodies of up to 40 bytes: one job of the file each.
    standIn = await startStandIn((req, res) => {
      if (req.body.length > 40) {
        res.writeHead(413, { 'content-type': 'text/html' }).end('<html><body>413 Request Entity Too Large</body></html>');
        return;
      }
      const { jobs } = JSON.parse(req.body) as { jobs: unknown[] };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ results: jobs.map((_, index) => ({ index, status: 'created' })) }));
    });
    const run = await bullpen(['enqueue', 'tool_call', '--file', file], { BULLPEN_API_URL: standIn.url, BULLPEN_API_KEY: 'k' });
    expect({ code: run.code, stdout: run.stdout, stderr: run.stderr }).toEqual({ code: 0, stdout: 'accepted 2, rejected 0\n', stderr: '' });
    expect(standIn.requests).toHaveLength(3);
  });

  it("still names the API's own problem documents by their code and detail", async () => {
    standIn = await startStandIn((_req, res) =>
      res
        .writeHead(404, { 'content-type': 'application/problem+json; charset=utf-8' })
        .end(JSON.stringify({ type: 'urn:bullpen:problem:lane_not_found', title: 'Lane not found', status: 404, code: 'lane_not_found', detail: 'No lane critic' })),
    );
    const run = await bullpen(['job', 'critic', '1'], { BULLPEN_API_URL: standIn.url, BULLPEN_API_KEY: 'k' });
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 1, stderr: 'bullpen: 404: lane_not_found - No lane critic\n' });
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
    // Both reached the stand-in, which never answered: the CLI may exit before this process has
    // taken the second request off its socket.
    const answering = standIn;
    await waitUntil(() => answering.requests.length >= 2, { what: 'the GET at the stand-in' });
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

  it('prints a next-page hint that works as pasted, even for a cursor that begins with a dash', async () => {
    // An API from before cursors were kept from beginning with a dash still hands them out.
    standIn = await startStandIn((req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ items: [], nextCursor: req.url.includes('cursor=') ? null : '-Zm9v_' })),
    );
    const env = { BULLPEN_API_URL: standIn.url, BULLPEN_API_KEY: 'k' };
    const first = await bullpen(['dead', 'tool_call', '--limit', '1'], env);
    expect(first.code).toBe(0);
    const hint = /pass (--cursor\S+) for the next page/.exec(first.stderr)?.[1];
    expect(hint).toBeDefined();
    const next = await bullpen(['dead', 'tool_call', '--limit', '1', hint ?? ''], env);
    expect({ code: next.code, stderr: next.stderr }).toEqual({ code: 0, stderr: '' });
    expect(standIn.requests.map((r) => r.url)).toEqual(['/v1/lanes/tool_call/dead?limit=1', '/v1/lanes/tool_call/dead?limit=1&cursor=-Zm9v_']);
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
