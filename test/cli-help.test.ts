// `bullpen <command> --help` shows that command's usage and calls nothing; a command given
// arguments it does not take says so instead of calling the API.
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
    for (const args of [['lanes', 'tool_call'], ['lanes', '--all'], ['job', 'tool_call', '1', '2'], ['help', 'frobnicate']]) {
      const run = await bullpen(args, env);
      expect({ args, code: run.code }).toEqual({ args, code: 2 });
    }
    expect(api.requests).toEqual([]);
  });
});
