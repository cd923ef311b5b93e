// `bullpen dead --redrive|--purge` when the API ends the call between two batches (api_overloaded,
// api_stopping: `results` says what it did, nothing after was touched): it sends the call again for
// the rest after Retry-After, a bounded number of times, and prints what every call did as one
// answer, also when it gives up; dead letters left undone are summed up with exit code 5. A
// stand-in API answers as the real one does (test/api-dead-letters-overload and -stop hold the
// real API to those answers).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { MAX_DEAD_IDS } from '../apps/api/src/schemas';
import { DEAD_ACTION_RETRIES, DEAD_IDS_MAX } from '../apps/cli/src/dead-action';
import { run } from '../apps/cli/src/main';

interface Received {
  method: string;
  url: string;
  body: string;
}

type Answer = { status: number; body: unknown; retryAfter?: string } | 'close';

interface StandIn {
  url: string;
  port: number;
  /** The redrives and purges. */
  received: Received[];
  /** The listings (GET), which a redrive or purge of all reads the API's clock from. */
  listed: Received[];
  close(): Promise<void>;
}

/** Answers the n-th redrive or purge with answers[n] (the last one again past the end), a listing with no dead letter. */
async function startStandIn(answers: Answer[], port = 0): Promise<StandIn> {
  const received: Received[] = [];
  const listed: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const request = { method: req.method ?? '', url: req.url ?? '', body: Buffer.concat(chunks).toString('utf8') };
      if (request.method === 'GET') {
        listed.push(request);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ items: [], nextCursor: null }));
        return;
      }
      received.push(request);
      const answer = answers[Math.min(received.length, answers.length) - 1];
      if (!answer || answer === 'close') {
        res.destroy();
        return;
      }
      const problem = answer.status >= 400;
      // As the real API's answers while it stops: the client's next request takes a new connection.
      // The API closed its idle connections (the one a listing used, say) when it began to stop.
      const stopping = problem && (answer.body as { code?: string }).code === 'api_stopping';
      if (stopping) server.closeIdleConnections();
      res.writeHead(answer.status, {
        'content-type': problem ? 'application/problem+json' : 'application/json',
        ...(answer.retryAfter !== undefined ? { 'retry-after': answer.retryAfter } : {}),
        ...(stopping ? { connection: 'close' } : {}),
      });
      res.end(JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const bound = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${bound}`,
    port: bound,
    received,
    listed,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const problem = (code: string, results: { id: string; status: string }[], retryAfter = '0', extra: Record<string, unknown> = {}): Answer => ({
  status: 503,
  retryAfter,
  body: { type: `urn:bullpen:problem:${code}`, title: code, status: 503, code, detail: `${code} detail`, results, ...extra },
});
const redriven = (...ids: string[]) => ids.map((id) => ({ id, status: 'redriven' }));

async function bullpen(args: string[], url: string, onErr?: (s: string) => void) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(args, { BULLPEN_API_URL: url, BULLPEN_API_KEY: 'k' }, {
    out: (s) => out.push(s),
    err: (s) => {
      err.push(s);
      onErr?.(s);
    },
  });
  return { code, stdout: out.join('\n'), stderr: err.join('') };
}

describe('bullpen dead --redrive|--purge, when the API ends the call early', () => {
  const standIns: StandIn[] = [];
  afterEach(async () => {
    await Promise.all(standIns.splice(0).map((s) => s.close()));
  });
  async function standIn(answers: Answer[], port?: number): Promise<StandIn> {
    const started = await startStandIn(answers, port);
    standIns.push(started);
    return started;
  }

  it('sends a redrive of all again after api_overloaded and api_stopping, and prints what every call did as one answer', async () => {
    const api = await standIn([
      problem('api_overloaded', redriven('a', 'b')),
      problem('api_stopping', redriven('c')),
      { status: 200, body: { lane: 'tool_call', redriven: 1, notFound: 0, notDead: 0, claimed: 0, results: redriven('d') } },
    ]);
    const result = await bullpen(['dead', 'tool_call', '--redrive', '--all'], api.url);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual({ lane: 'tool_call', redriven: 4, notFound: 0, notDead: 0, claimed: 0, results: redriven('a', 'b', 'c', 'd') });
    expect(api.received.map((r) => [r.method, r.url, r.body])).toEqual(Array(3).fill(['POST', '/v1/lanes/tool_call/dead/redrive', '{}']));
    expect(result.stderr).toMatch(/api_overloaded after 2 dead letters \(2 redriven so far\); sending it again for the rest in 0 s \(retry 1 of 30\)/);
    expect(result.stderr).toMatch(/api_stopping after 3 dead letters \(3 redriven so far\); sending it again for the rest in 0 s \(retry 2 of 30\)/);
  });

  it('sends a redrive or purge of all again with the failedBefore of the first answer, so that jobs redriven and dead again since are left alone', async () => {
    // The bound the API took at the first call's start; the later answers echo what they were sent.
    const failedBefore = 1_764_000_000_000;
    const api = await standIn([
      problem('api_stopping', redriven('a', 'b'), '0', { failedBefore }),
      problem('api_overloaded', [], '0', { failedBefore }),
      { status: 200, body: { lane: 'tool_call', redriven: 1, notFound: 0, notDead: 0, claimed: 0, failedBefore, results: redriven('c') } },
    ]);
    const result = await bullpen(['dead', 'tool_call', '--redrive', '--all'], api.url);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ redriven: 3, failedBefore, results: redriven('a', 'b', 'c') });
    expect(api.received.map((r) => r.body)).toEqual(['{}', JSON.stringify({ failedBefore }), JSON.stringify({ failedBefore })]);

    const purge = await standIn([
      problem('api_stopping', [{ id: 'a', status: 'purged' }], '0', { failedBefore }),
      { status: 200, body: { lane: 'tool_call', purged: 1, notFound: 0, notDead: 0, claimed: 0, failedBefore, results: [{ id: 'b', status: 'purged' }] } },
    ]);
    expect((await bullpen(['dead', 'tool_call', '--purge', '--all'], purge.url)).code).toBe(0);
    expect(purge.received.map((r) => [r.method, r.body])).toEqual([
      ['DELETE', '{}'],
      ['DELETE', JSON.stringify({ failedBefore })],
    ]);
  });

  it('sends a purge of listed ids again for the ids the API did not reach', async () => {
    const api = await standIn([
      problem('api_stopping', [
        { id: 'a', status: 'purged' },
        { id: 'b', status: 'not_found' },
      ]),
      { status: 200, body: { lane: 'tool_call', purged: 1, notFound: 0, notDead: 0, claimed: 0, results: [{ id: 'c', status: 'purged' }] } },
    ]);
    const result = await bullpen(['dead', 'tool_call', '--purge', '--ids', 'a,b,c'], api.url);
    expect(api.received.map((r) => [r.method, r.body])).toEqual([
      ['DELETE', '{"ids":["a","b","c"]}'],
      ['DELETE', '{"ids":["c"]}'],
    ]);
    expect(JSON.parse(result.stdout)).toMatchObject({ purged: 2, notFound: 1, results: [{ id: 'a' }, { id: 'b' }, { id: 'c' }] });
    // b was no dead letter: said, with exit 5.
    expect(result.code).toBe(5);
    expect(result.stderr).toMatch(/dead tool_call --purge: 2 purged, 1 not \(not_found: 1\): those ids name no dead letter of yours/);
  });

  it(`sends more ids than the API takes at once in calls of ${DEAD_IDS_MAX}, the ids a call ended early did not reach again, and prints one answer`, async () => {
    expect(DEAD_IDS_MAX).toBe(MAX_DEAD_IDS);
    const ids = Array.from({ length: 2200 }, (_, i) => `j${i}`);
    const purged = (from: number, to: number) => ids.slice(from, to).map((id) => ({ id, status: 'purged' }));
    const answer = (results: { id: string; status: string }[]): Answer => ({ status: 200, body: { lane: 'tool_call', results } });
    const api = await standIn([
      answer(purged(0, 1000)),
      // The second call ends after 300 of its ids.
      problem('api_stopping', purged(1000, 1300)),
      answer([...purged(1300, 2199), { id: 'j2199', status: 'not_found' }]),
    ]);
    const result = await bullpen(['dead', 'tool_call', '--purge', '--ids', ids.join(',')], api.url);
    const sent = api.received.map((r) => (JSON.parse(r.body) as { ids: string[] }).ids);
    expect(sent).toEqual([ids.slice(0, 1000), ids.slice(1000, 2000), ids.slice(1300)]);
    expect(api.listed).toEqual([]);
    expect(JSON.parse(result.stdout)).toEqual({ lane: 'tool_call', purged: 2199, notFound: 1, notDead: 0, claimed: 0, results: [...purged(0, 2199), { id: 'j2199', status: 'not_found' }] });
    expect(result.code).toBe(5);
    expect(result.stderr).toMatch(/api_stopping after 1300 dead letters \(1300 purged so far\); sending it again for the rest in 0 s \(retry 1 of 30\)/);
    expect(result.stderr).toMatch(/dead tool_call --purge: 2199 purged, 1 not \(not_found: 1\): those ids name no dead letter of yours/);
  });

  it(`gives up after ${DEAD_ACTION_RETRIES} retries, printing what the calls did and exiting 1`, async () => {
    // The first call redrives a; every later one gets no room.
    const sequence = await standIn([problem('api_overloaded', redriven('a')), problem('api_overloaded', [])]);
    const result = await bullpen(['dead', 'tool_call', '--redrive', '--all'], sequence.url);
    expect(result.code).toBe(1);
    expect(sequence.received).toHaveLength(DEAD_ACTION_RETRIES + 1);
    expect(JSON.parse(result.stdout)).toMatchObject({ redriven: 1, results: redriven('a') });
    expect(result.stderr).toMatch(/1 redriven before this error; the others were not touched: to redrive them, run bullpen dead tool_call --redrive --all --failed-before \d+000\n/);
    expect(result.stderr).toMatch(/503: api_overloaded/);
  });

  it('prints what the calls before did when the connection breaks during one, and the command to run again with their bound', async () => {
    const failedBefore = 1_764_000_000_000;
    const api = await standIn([problem('api_stopping', redriven('a'), '0', { failedBefore }), 'close']);
    const result = await bullpen(['dead', 'tool_call', '--redrive', '--all'], api.url);
    expect(result.code).toBe(1);
    expect(api.received).toHaveLength(2);
    expect(JSON.parse(result.stdout)).toMatchObject({ redriven: 1, failedBefore, results: redriven('a') });
    expect(result.stderr).toMatch(
      /the outcome of POST is unknown\. An API still running goes on with it\. To redrive the rest, run bullpen dead tool_call --redrive --all --failed-before 1764000000000: it acts only on the dead letters that failed by then and are still there, so no job this call redrove that has failed again since is redriven twice/,
    );
  });

  it('waits for an API that stops during the redrive to come back and sends it again for the rest, but not for one that never answered', async () => {
    const never = await standIn([]);
    await never.close();
    standIns.splice(standIns.indexOf(never), 1);
    const unreachable = await bullpen(['dead', 'tool_call', '--redrive', '--all'], never.url);
    expect({ code: unreachable.code, stdout: unreachable.stdout }).toEqual({ code: 3, stdout: '' });
    expect(unreachable.stderr).not.toMatch(/sending it again/);

    const first = await standIn([problem('api_stopping', redriven('a'))]);
    const { port } = first;
    let restarted: Promise<StandIn> | undefined;
    const result = await bullpen(['dead', 'tool_call', '--redrive', '--all'], first.url, (line) => {
      // The API's process has exited: the retry finds nothing there. Then it is back.
      if (line.includes('api_stopping after 1')) void first.close();
      if (line.includes('cannot reach the API') && !restarted) {
        restarted = standIn([{ status: 200, body: { lane: 'tool_call', redriven: 1, notFound: 0, notDead: 0, claimed: 0, results: redriven('b') } }], port);
      }
    });
    expect(restarted).toBeDefined();
    expect(result.stderr).toMatch(/cannot reach the API .*; sending it again for the rest in 1 s/);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ redriven: 2, results: redriven('a', 'b') });
  });
});
