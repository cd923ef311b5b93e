// `bullpen dead --redrive|--purge` when the API ends the call between two batches (api_overloaded,
// api_stopping: `results` says what it did, nothing after was touched): it sends the call again for
// the rest after Retry-After, a bounded number of times, and prints what every call did as one
// answer, also when it gives up; dead letters left undone are summed up with exit code 5. A
// stand-in API answers as the real one does (test/api-dead-letters-overload and -stop hold the
// real API to those answers).
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { DEAD_ACTION_RETRIES } from '../apps/cli/src/dead-action';
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
  received: Received[];
  close(): Promise<void>;
}

/** Answers the n-th request with answers[n] (the last one again past the end). */
async function startStandIn(answers: Answer[], port = 0): Promise<StandIn> {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ method: req.method ?? '', url: req.url ?? '', body: Buffer.concat(chunks).toString('utf8') });
      const answer = answers[Math.min(received.length, answers.length) - 1];
      if (!answer || answer === 'close') {
        res.destroy();
        return;
      }
      const problem = answer.status >= 400;
      // As the real API's answers while it stops: the client's next request takes a new connection.
      const stopping = problem && (answer.body as { code?: string }).code === 'api_stopping';
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
    expect(JSON.parse(result.stdout)).toMatchObject({ redriven: 3, results: redriven('a', 'b', 'c') });
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

  it(`gives up after ${DEAD_ACTION_RETRIES} retries, printing what the calls did and exiting 1`, async () => {
    // The first call redrives a; every later one gets no room.
    const sequence = await standIn([problem('api_overloaded', redriven('a')), problem('api_overloaded', [])]);
    const result = await bullpen(['dead', 'tool_call', '--redrive', '--all'], sequence.url);
    expect(result.code).toBe(1);
    expect(sequence.received).toHaveLength(DEAD_ACTION_RETRIES + 1);
    expect(JSON.parse(result.stdout)).toMatchObject({ redriven: 1, results: redriven('a') });
    expect(result.stderr).toMatch(/1 redriven before this error; the others were not touched/);
    expect(result.stderr).toMatch(/503: api_overloaded/);
  });

  it('prints what the calls before did when the connection breaks during one, and says a rerun is safe', async () => {
    const api = await standIn([problem('api_stopping', redriven('a')), 'close']);
    const result = await bullpen(['dead', 'tool_call', '--redrive', '--all'], api.url);
    expect(result.code).toBe(1);
    expect(api.received).toHaveLength(2);
    expect(JSON.parse(result.stdout)).toMatchObject({ redriven: 1, results: redriven('a') });
    expect(result.stderr).toMatch(/the outcome of POST is unknown\. An API still running goes on with it\. Running the same command again is safe: it acts only on the dead letters still there/);
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
