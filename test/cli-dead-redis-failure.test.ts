// `bullpen dead --redrive|--purge` when Redis fails the API's call partway: redis_unavailable says
// what the batches before did and that nothing after was touched, so the call is sent again for
// the rest, as after api_stopping; redis_timeout says the batch under way may or may not have been
// done, so only a call of all, sent again with its failedBefore, is repeated (it redrives no job
// twice). Before, either ended the command with exit 1. A stand-in API answers as the real one does
// (test/api-dead-letters-redis-failure.test.ts holds the real API to those answers).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { run } from '../apps/cli/src/main';

type Answer = { status: number; body: unknown };

/**
 * Answers the n-th redrive or purge with answers[n] (the last one again past the end) and records
 * its body; a listing (which a redrive of all reads the API's clock from) with no dead letter.
 */
async function startStandIn(answers: Answer[]): Promise<{ url: string; bodies: string[]; close(): Promise<void> }> {
  const bodies: string[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ items: [], nextCursor: null }));
        return;
      }
      bodies.push(Buffer.concat(chunks).toString('utf8'));
      const answer = answers[Math.min(bodies.length, answers.length) - 1] as Answer;
      res.writeHead(answer.status, { 'content-type': answer.status >= 400 ? 'application/problem+json' : 'application/json', 'retry-after': '0' });
      res.end(JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    bodies,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const problem = (code: string, results: { id: string; status: string }[], extra: Record<string, unknown> = {}): Answer => ({
  status: 503,
  body: { type: `urn:bullpen:problem:${code}`, title: code, status: 503, code, detail: `${code} detail`, results, ...extra },
});
const redriven = (...ids: string[]) => ids.map((id) => ({ id, status: 'redriven' }));
const done = (results: { id: string; status: string }[], extra: Record<string, unknown> = {}): Answer => ({
  status: 200,
  body: { lane: 'tool_call', redriven: results.length, notFound: 0, notDead: 0, claimed: 0, ...extra, results },
});

async function bullpen(args: string[], url: string) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(args, { BULLPEN_API_URL: url, BULLPEN_API_KEY: 'k' }, { out: (s) => out.push(s), err: (s) => err.push(s) });
  return { code, stdout: out.join('\n'), stderr: err.join('') };
}

describe('bullpen dead --redrive, when Redis fails the call partway', () => {
  const standIns: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    await Promise.all(standIns.splice(0).map((s) => s.close()));
  });
  async function standIn(answers: Answer[]) {
    const started = await startStandIn(answers);
    standIns.push(started);
    return started;
  }

  it('sends a redrive of all again with its failedBefore after redis_unavailable and redis_timeout, and prints what every call did', async () => {
    const failedBefore = 1_764_000_000_000;
    const api = await standIn([
      problem('redis_unavailable', redriven('a', 'b'), { failedBefore }),
      problem('redis_timeout', redriven('c'), { failedBefore }),
      done(redriven('d'), { failedBefore }),
    ]);
    const result = await bullpen(['dead', 'tool_call', '--redrive', '--all'], api.url);
    expect(result.code).toBe(0);
    expect(api.bodies).toEqual(['{}', JSON.stringify({ failedBefore }), JSON.stringify({ failedBefore })]);
    expect(JSON.parse(result.stdout)).toMatchObject({ redriven: 4, results: redriven('a', 'b', 'c', 'd') });
    expect(result.stderr).toMatch(/redis_unavailable after 2 dead letters \(2 redriven so far\); sending it again for the rest/);
    expect(result.stderr).toMatch(/redis_timeout after 3 dead letters \(3 redriven so far\); sending it again for the rest/);
  });

  it('sends listed ids again after redis_unavailable for the ids not reached, but not after redis_timeout, whose batch may have been redriven', async () => {
    const unavailable = await standIn([problem('redis_unavailable', redriven('a')), done(redriven('b', 'c'))]);
    const resent = await bullpen(['dead', 'tool_call', '--redrive', '--ids', 'a,b,c'], unavailable.url);
    expect(resent.code).toBe(0);
    expect(unavailable.bodies).toEqual(['{"ids":["a","b","c"]}', '{"ids":["b","c"]}']);
    expect(JSON.parse(resent.stdout)).toMatchObject({ redriven: 3, results: redriven('a', 'b', 'c') });

    const unanswered = await standIn([problem('redis_timeout', redriven('a'))]);
    const stopped = await bullpen(['dead', 'tool_call', '--redrive', '--ids', 'a,b,c'], unanswered.url);
    expect(stopped.code).toBe(1);
    expect(unanswered.bodies).toHaveLength(1);
    expect(stopped.stderr).toMatch(/503: redis_timeout/);
  });
});
