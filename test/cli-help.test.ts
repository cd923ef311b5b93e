// `bullpen <command> --help` shows that command's usage and calls nothing; a command given
// arguments it does not take says so instead of calling the API.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { bullpen, startStandIn, type StandIn } from './support/cli';

describe('bullpen help', () => {
  let api: StandIn;
  beforeAll(async () => {
    api = await startStandIn((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"lanes":[]}'));
  });
  afterAll(() => api.close());

  it("prints a command's usage for --help and -h, without calling the API", async () => {
    const env = { BULLPEN_API_URL: api.url, BULLPEN_API_KEY: 'k' };
    for (const [args, usage] of [
      [['lanes', '--help'], /^usage: bullpen lanes /],
      [['job', 'tool_call', '-h'], /^usage: bullpen job <lane> <id>/],
      [['enqueue', 'tool_call', 'noop', '--help'], /^usage: bullpen enqueue <lane> <name>/],
      [['dead', 'tool_call', '--purge', '--all', '--help'], /^usage: bullpen dead <lane>/],
      [['report', '--help'], /^usage: bullpen report <events\.jsonl\.\.\.>/],
      [['pause', 'critic', '--help'], /^usage: bullpen pause <lane> /],
      [['resume', '-h'], /^usage: bullpen resume <lane> /],
      [['help', 'dead'], /^usage: bullpen dead <lane>/],
    ] as Array<[string[], RegExp]>) {
      const run = await bullpen(args, env);
      expect({ args, code: run.code, stderr: run.stderr }).toEqual({ args, code: 0, stderr: '' });
      expect(run.stdout).toMatch(usage);
      expect(run.stdout).toMatch(/exit codes: 0 ok/);
    }
    expect(api.requests).toEqual([]);
  });

  it('ignores a leading `--`, which npm 11 passes on from `npx bullpen -- --help`', async () => {
    const env = { BULLPEN_API_URL: api.url, BULLPEN_API_KEY: 'k' };
    for (const [args, usage] of [
      [['--', '--help'], /^usage: bullpen <command>/],
      [['--', 'lanes', '--help'], /^usage: bullpen lanes /],
      [['--', 'help', 'dead'], /^usage: bullpen dead <lane>/],
    ] as Array<[string[], RegExp]>) {
      const run = await bullpen(args, env);
      expect({ args, code: run.code, stderr: run.stderr }).toEqual({ args, code: 0, stderr: '' });
      expect(run.stdout).toMatch(usage);
    }
    // Only the very first argument: a second `--` is not a command.
    const twice = await bullpen(['--', '--', '--help'], env);
    expect({ code: twice.code, stderr: twice.stderr }).toEqual({ code: 2, stderr: expect.stringMatching(/^bullpen: unknown command "--"/) });
    expect(api.requests).toEqual([]);
  });

  it('refuses arguments a command does not take (exit 2), without calling the API', async () => {
    const env = { BULLPEN_API_URL: api.url, BULLPEN_API_KEY: 'k' };
    for (const args of [['lanes', 'tool_call'], ['lanes', '--all'], ['job', 'tool_call', '1', '2'], ['help', 'frobnicate'], ['pause'], ['resume', 'a', 'b'], ['pause', '--all', 'a']]) {
      const run = await bullpen(args, env);
      expect({ args, code: run.code }).toEqual({ args, code: 2 });
    }
    expect(api.requests).toEqual([]);
  });

  it('refuses an empty --idempotency-key (exit 2, naming the flag) instead of enqueueing without one', async () => {
    const env = { BULLPEN_API_URL: api.url, BULLPEN_API_KEY: 'k' };
    for (const key of ['', 'k'.repeat(201)]) {
      const run = await bullpen(['enqueue', 'tool_call', 'noop', '--idempotency-key', key], env);
      expect({ code: run.code, stdout: run.stdout }).toEqual({ code: 2, stdout: '' });
      expect(run.stderr).toMatch(/--idempotency-key: expected 1 to 200 characters/);
    }
    expect(api.requests).toEqual([]);
  });
});

describe('the bullpen commands docs/runbooks.md gives', () => {
  let api: StandIn;
  let dir: string;
  beforeAll(async () => {
    api = await startStandIn((_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"lanes":[]}'));
    dir = mkdtempSync(path.join(tmpdir(), 'bullpen-runbook-'));
  });
  afterAll(async () => {
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('are taken as written: none is refused as bad arguments (exit 2)', async () => {
    const runbooks = readFileSync(path.resolve(__dirname, '../docs/runbooks.md'), 'utf8');
    // Code spans are one line or wrap over two.
    const commands = [...runbooks.matchAll(/`bullpen ([a-z][^`]*)`/g)].map((m) => (m[1] as string).replace(/\s+/g, ' ').trim());
    expect(commands.length).toBeGreaterThanOrEqual(3);
    const jobsFile = path.join(dir, 'jobs.jsonl');
    writeFileSync(jobsFile, '{"name":"noop","data":{}}\n');
    const env = { BULLPEN_API_URL: api.url, BULLPEN_API_KEY: 'k' };
    for (const command of commands) {
      const args = command.split(' ').map((arg) => (arg === '<lane>' ? 'tool_call' : arg === 'jobs.jsonl' ? jobsFile : arg));
      const run = await bullpen(args, env);
      expect({ command, refusedArguments: run.code === 2, stderr: run.code === 2 ? run.stderr : '' }).toEqual({ command, refusedArguments: false, stderr: '' });
    }
  });
});
