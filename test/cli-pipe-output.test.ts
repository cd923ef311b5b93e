// `bullpen` writing to a pipe (`| jq`, `$(...)`, `docker compose exec` without a tty): a write to a
// pipe completes asynchronously, so the CLI must not exit before stdout has taken all of it. A
// stand-in API answers with more than a pipe holds (64 KiB on Linux).
import { bullpen, startStandIn, type StandIn } from './support/cli';

/** A dead letter as the API lists it, with a long attempt history. */
function deadLetter(i: number) {
  return {
    id: `job-${i}`,
    name: 'tool_call',
    data: { prompt: 'x'.repeat(400) },
    attempts: Array.from({ length: 5 }, (_, n) => ({ attempt: n + 1, error: { class: 'permanent', message: `failed ${'y'.repeat(300)}` } })),
  };
}

describe('bullpen with stdout on a pipe', () => {
  let standIn: StandIn | undefined;
  afterEach(async () => {
    await standIn?.close();
    standIn = undefined;
  });

  it('writes the whole of a dead-letter page larger than 1 MB before it exits 0', async () => {
    const page = { items: Array.from({ length: 500 }, (_, i) => deadLetter(i)), nextCursor: null };
    standIn = await startStandIn((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(page)));
    const run = await bullpen(['dead', 'tool_call', '--limit', '500'], { BULLPEN_API_URL: standIn.url, BULLPEN_API_KEY: 'k' });
    expect({ code: run.code, stderr: run.stderr }).toEqual({ code: 0, stderr: '' });
    const expected = `${JSON.stringify(page, null, 2)}\n`;
    expect(expected.length).toBeGreaterThan(1024 * 1024);
    expect(run.stdout.length).toBe(expected.length);
    expect(JSON.parse(run.stdout)).toEqual(page);
  });

  it('writes the whole of a long redrive answer and the summary on stderr, and keeps exit code 5', async () => {
    // A redrive of all answers a result per dead letter: 20,000 of them, one held by another call.
    const results = Array.from({ length: 20_000 }, (_, i) => ({ id: `0b5c1f9e-7a2d-4c8e-9f3a-${String(i).padStart(12, '0')}`, status: i === 0 ? 'claimed' : 'redriven' }));
    const answer = { lane: 'tool_call', redriven: 19_999, notFound: 0, notDead: 0, claimed: 1, retryAfterSeconds: 20, failedBefore: 1_764_000_000_000, results };
    standIn = await startStandIn((req, res) => {
      const body = req.method === 'GET' ? { items: [], nextCursor: null } : answer;
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
    const run = await bullpen(['dead', 'tool_call', '--redrive', '--all'], { BULLPEN_API_URL: standIn.url, BULLPEN_API_KEY: 'k' });
    expect(run.code).toBe(5);
    expect(run.stdout.length).toBeGreaterThan(1024 * 1024);
    expect(JSON.parse(run.stdout)).toMatchObject({ redriven: 19_999, claimed: 1, results });
    expect(run.stderr).toMatch(/19999 redriven, 1 not \(claimed: 1\)/);
  });
});
