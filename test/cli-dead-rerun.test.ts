// `bullpen dead <lane> --redrive|--purge --all` run again after a command that ended before its
// answer: the command prints the bound on failure times to run it again with (--failed-before),
// so that the jobs the first call redrove, and that have died again since, are not redriven a
// second time. Stand-in APIs hold the CLI to its requests and messages; a running API and worker,
// behind a proxy that withholds the redrive's answer, show a rerun that leaves those jobs alone.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLogger, jobKeys } from '@bullpen/core';
import { startTestApi, KEYS, type TestApi } from '../apps/api/test/harness';
import { run } from '../apps/cli/src/main';
import { builtinHandlers } from '../apps/worker/src/handlers';
import { HandlerRegistry } from '../apps/worker/src/registry';
import { WorkerRuntime } from '../apps/worker/src/runtime';
import { bullpen, startStandIn, type StandIn, type StandInRequest } from './support/cli';
import { deferred, waitUntil } from './support/wait';

async function inProcess(args: string[], env: Record<string, string>) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(args, { BULLPEN_API_KEY: 'k', ...env }, { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, stdout: out.join('\n'), stderr: err.join('') };
}

const json = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) =>
  res.writeHead(status, { 'content-type': status >= 400 ? 'application/problem+json' : 'application/json', ...headers }).end(JSON.stringify(body));

const actions = (s: StandIn) => s.requests.filter((r) => r.method !== 'GET');

/** The ready-to-paste command a message ends with, and its bound. */
function rerunIn(stderr: string, action: 'redrive' | 'purge'): { args: string[]; failedBefore: number } {
  const m = new RegExp(`run (bullpen dead \\S+ --${action} --all --failed-before (\\d+))`).exec(stderr);
  if (!m?.[1] || !m[2]) throw new Error(`no command to run again in: ${stderr}`);
  return { args: m[1].split(' ').slice(1), failedBefore: Number(m[2]) };
}

describe('bullpen dead --redrive|--purge --all and the command to run it again, against a stand-in API', () => {
  let standIn: StandIn | undefined;
  afterEach(async () => {
    await standIn?.close();
    standIn = undefined;
  });

  it("prints, when no answer comes, the command to run again bounded by the API's clock before the call, and that command sends it", async () => {
    // The API's clock, as its answers' Date says it: to the second.
    const apiNow = 1_764_000_123_456;
    standIn = await startStandIn((req: StandInRequest, res) => {
      if (req.method === 'GET') return json(res, 200, { items: [], nextCursor: null }, { date: new Date(apiNow).toUTCString() });
      const { failedBefore } = JSON.parse(req.body) as { failedBefore?: number };
      // The first call gets no answer in time (the API goes on with it); the rerun does.
      if (failedBefore === undefined) return;
      json(res, 200, { lane: 'tool_call', redriven: 1, notFound: 0, notDead: 0, claimed: 0, failedBefore, results: [{ id: 'late', status: 'redriven' }] });
    });
    const first = await inProcess(['dead', 'tool_call', '--redrive', '--all'], { BULLPEN_API_URL: standIn.url, BULLPEN_API_TIMEOUT_MS: '300' });
    expect({ code: first.code, stdout: first.stdout }).toEqual({ code: 1, stdout: '' });
    expect(first.stderr).toMatch(
      /^bullpen: no answer from POST .*\/v1\/lanes\/tool_call\/dead\/redrive within 0\.3 s .*An API still running goes on with it\. To redrive the rest, run bullpen dead tool_call --redrive --all --failed-before 1764000123000: it acts only on the dead letters that failed by then and are still there, so no job this call redrove that has failed again since is redriven twice/,
    );
    const again = rerunIn(first.stderr, 'redrive');
    expect(again.failedBefore).toBe(1_764_000_123_000);

    const second = await inProcess(again.args, { BULLPEN_API_URL: standIn.url });
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout)).toMatchObject({ redriven: 1, failedBefore: again.failedBefore });
    // Read the clock once, before the first call; the rerun sends the bound it was given.
    expect(standIn.requests.map((r) => [r.method, r.body])).toEqual([
      ['GET', ''],
      ['POST', '{}'],
      ['POST', JSON.stringify({ failedBefore: again.failedBefore })],
    ]);
  });

  it('sends --failed-before with every call, also after the API ended one early, and prints it', async () => {
    const failedBefore = 1_764_000_000_000;
    let calls = 0;
    standIn = await startStandIn((req, res) => {
      calls += 1;
      if (calls === 1) {
        const results = [{ id: 'a', status: 'purged' }];
        return json(res, 503, { type: 'urn:bullpen:problem:api_overloaded', title: 't', status: 503, code: 'api_overloaded', detail: 'd', results, failedBefore }, { 'retry-after': '0' });
      }
      json(res, 200, { lane: 'tool_call', purged: 1, notFound: 0, notDead: 0, claimed: 0, failedBefore, results: [{ id: 'b', status: 'purged' }] });
    });
    const result = await inProcess(['dead', 'tool_call', '--purge', '--all', '--failed-before', String(failedBefore)], { BULLPEN_API_URL: standIn.url });
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ purged: 2, failedBefore });
    expect(standIn.requests.map((r) => [r.method, r.body])).toEqual([
      ['DELETE', JSON.stringify({ failedBefore })],
      ['DELETE', JSON.stringify({ failedBefore })],
    ]);
  });

  it('names the command to run again with the bound when dead letters were left, held by another call or taken out meanwhile', async () => {
    const failedBefore = 1_764_000_000_000;
    let statuses = ['claimed'];
    standIn = await startStandIn((req, res) => {
      if (req.method === 'GET') return json(res, 200, { items: [], nextCursor: null });
      const results = statuses.map((status, i) => ({ id: `j${i}`, status }));
      json(res, 200, { lane: 'tool_call', redriven: 0, notFound: 0, notDead: 0, claimed: 0, retryAfterSeconds: 20, failedBefore, results });
    });
    const held = await inProcess(['dead', 'tool_call', '--redrive', '--all'], { BULLPEN_API_URL: standIn.url });
    expect(held.code).toBe(5);
    expect(held.stderr).toBe(
      'bullpen: dead tool_call --redrive --all: 0 redriven, 1 not (claimed: 1): claimed ones are held by another redrive or purge, or by one an API ' +
        'restart cut off; run bullpen dead tool_call --redrive --all --failed-before 1764000000000 in 20 s\n',
    );
    statuses = ['redriven', 'not_dead'];
    const taken = await inProcess(['dead', 'tool_call', '--redrive', '--all'], { BULLPEN_API_URL: standIn.url });
    expect(taken.code).toBe(5);
    expect(taken.stderr).toMatch(/1 redriven, 1 not \(not_dead: 1\): another call took them out of the dead letters meanwhile; to act on any still dead, run bullpen dead tool_call --redrive --all --failed-before 1764000000000\n$/);
  });

  it('refuses a --failed-before that is no time in ms since the epoch, or that comes without --all, touching nothing', async () => {
    standIn = await startStandIn((_req, res) => json(res, 500, { code: 'unexpected' }));
    const url = standIn.url;
    for (const value of ['-1', '1.5', 'soon', '', '2025-11-24T16:00:00Z', '99999999999999999999']) {
      const refused = await inProcess(['dead', 'tool_call', '--redrive', '--all', `--failed-before=${value}`], { BULLPEN_API_URL: url });
      expect({ value, code: refused.code, stdout: refused.stdout }).toEqual({ value, code: 2, stdout: '' });
      expect(refused.stderr).toMatch(/^bullpen: --failed-before: expected a time in ms since the epoch \(an integer of at least 0/);
    }
    const withIds = await inProcess(['dead', 'tool_call', '--purge', '--ids', 'a', '--failed-before', '1'], { BULLPEN_API_URL: url });
    expect({ code: withIds.code, stderr: withIds.stderr }).toEqual({ code: 2, stderr: 'bullpen: dead --purge: --failed-before bounds --all, not --ids\n' });
    const listing = await inProcess(['dead', 'tool_call', '--all', '--failed-before', '1'], { BULLPEN_API_URL: url });
    expect({ code: listing.code, stderr: listing.stderr }).toEqual({ code: 2, stderr: 'bullpen: dead: --failed-before bounds a --redrive or --purge of --all\n' });
    const zero = await inProcess(['dead', 'tool_call', '--purge', '--all', '--failed-before', '0'], { BULLPEN_API_URL: url });
    // 0 is a bound like any other (the API answers here with an error, which is not the point).
    expect(zero.code).toBe(1);
    expect(actions(standIn).map((r) => r.body)).toEqual([JSON.stringify({ failedBefore: 0 })]);
  });
});

/**
 * A proxy to the API that can withhold the answer to the next redrive: the API gets the request and
 * does the redrive; the CLI gets no answer, as when its BULLPEN_API_TIMEOUT_MS runs out first.
 */
async function startWithholdingProxy(target: string) {
  let withholding: ((body: unknown) => void) | undefined;
  const server = http.createServer((req, res) => {
    const upstream = http.request(`${target}${req.url ?? ''}`, { method: req.method, headers: req.headers }, (answer) => {
      const take = req.method === 'POST' && req.url?.endsWith('/dead/redrive') ? withholding : undefined;
      if (take) {
        withholding = undefined;
        const chunks: Buffer[] = [];
        answer.on('data', (c: Buffer) => chunks.push(c));
        answer.on('end', () => take(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
        return;
      }
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    /** The API's answer to the next redrive, which the client never gets. */
    withholdNextRedrive(): Promise<unknown> {
      const answer = deferred<unknown>();
      withholding = answer.resolve;
      return answer.promise;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

describe('bullpen dead --redrive --all run again after no answer came, against a running API and worker', () => {
  let api: TestApi;
  let runtime: WorkerRuntime;
  let proxy: Awaited<ReturnType<typeof startWithholdingProxy>>;
  let env: Record<string, string>;

  beforeAll(async () => {
    api = await startTestApi({ lanesFile: { lanes: { tool_call: { concurrency: 5, attempts: 1 }, critic: { concurrency: 1 } } } });
    runtime = new WorkerRuntime({
      config: api.config,
      logger: createLogger('worker', 'error'),
      registry: new HandlerRegistry().registerAll(builtinHandlers()),
      lanes: ['tool_call'],
    });
    await runtime.start();
    proxy = await startWithholdingProxy(api.url);
    env = { BULLPEN_API_URL: proxy.url, BULLPEN_API_KEY: KEYS.acme };
  });
  afterAll(async () => {
    await proxy.close();
    await runtime.close(2000);
    await api.stop();
  });

  const job = async (id: string) => (await api.request<{ state: string; attempts: unknown[]; finishedAt: string }>('GET', `/v1/lanes/tool_call/jobs/${id}`)).body;

  it('redrives with the printed command the dead letters left, and no job the first call redrove that has failed again since', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 20; i += 1) {
      const created = await api.request<{ id: string }>('POST', '/v1/lanes/tool_call/jobs', { body: { name: 'fail', data: { kind: 'permanent', message: 'no' } } });
      ids.push(created.body.id);
    }
    await waitUntil(async () => (await Promise.all(ids.map(job))).every((j) => j.state === 'failed' && j.attempts.length === 1), { what: 'the jobs to be dead' });
    // One is held by another call meanwhile: the first call leaves it, for the rerun to take.
    const [held = '', ...others] = ids;
    const claim = jobKeys(api.config.prefix, 'tool_call', held).deadLetterClaim;
    await api.redis.set(claim, '1', 'PX', 30_000);
    // The bound printed after no answer is the API's clock to the second: let the dead letters be older.
    const newest = Math.max(...(await Promise.all(ids.map(job))).map((j) => Date.parse(j.finishedAt)));
    await waitUntil(() => Date.now() >= newest + 1000, { what: 'a second after the newest dead letter failed' });

    const withheld = proxy.withholdNextRedrive();
    const first = await bullpen(['dead', 'tool_call', '--redrive', '--all'], { ...env, BULLPEN_API_TIMEOUT_MS: '2000' });
    expect(first.code).toBe(1);
    expect(first.stderr).toMatch(/no answer from POST .* within 2 s .*An API still running goes on with it\./);
    // The API redrove all but the held one, though its answer never came; they fail again.
    expect(await withheld).toMatchObject({ redriven: others.length, claimed: 1 });
    await waitUntil(async () => (await Promise.all(others.map(job))).every((j) => j.state === 'failed' && j.attempts.length === 2), { what: 'the redriven jobs to die again' });
    await api.redis.del(claim);

    const again = rerunIn(first.stderr, 'redrive');
    const rerun = await bullpen(again.args, env);
    expect(rerun.code).toBe(0);
    expect(JSON.parse(rerun.stdout)).toEqual({ lane: 'tool_call', redriven: 1, notFound: 0, notDead: 0, claimed: 0, failedBefore: again.failedBefore, results: [{ id: held, status: 'redriven' }] });
    await waitUntil(async () => (await job(held)).attempts.length === 2 && (await job(held)).state === 'failed', { what: 'the held job to run once more' });
    // Each job ran twice: once, and once redriven.
    expect((await Promise.all(ids.map(job))).map((j) => j.attempts.length)).toEqual(ids.map(() => 2));

    // The same command without the bound is a new call, which takes every dead letter there now.
    const fresh = await bullpen(['dead', 'tool_call', '--purge', '--all'], env);
    expect(JSON.parse(fresh.stdout)).toMatchObject({ purged: ids.length });
  });
});
