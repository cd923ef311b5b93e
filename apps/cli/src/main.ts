#!/usr/bin/env node
// `bullpen`: the operator CLI. Commands: report, enqueue, job, lanes, pause, resume, dead.
import { parseArgs } from 'node:util';
import { ApiClient, ApiError } from './api-client';
import { EXIT_LINES_REFUSED } from './bulk-enqueue';
import { loadCliConfig, UsageError } from './config';
import { dead, DEAD_USAGE } from './dead';
import { enqueue, ENQUEUE_USAGE } from './enqueue';
import type { Out } from './io';
import { PAUSE_USAGE, RESUME_USAGE, setPaused } from './lane-pause';
import { report, REPORT_USAGE } from './report-command';

const JOB_USAGE = 'job <lane> <id>                               a job: state, attempts, result';
const LANES_USAGE = 'lanes                                         lanes with their policies and (operators) live counts';

/** Each command's usage, for `bullpen <command> --help`. */
const COMMAND_USAGE: Record<string, string> = {
  report: REPORT_USAGE,
  enqueue: ENQUEUE_USAGE,
  job: JOB_USAGE,
  lanes: LANES_USAGE,
  pause: PAUSE_USAGE,
  resume: RESUME_USAGE,
  dead: DEAD_USAGE,
};

const FOOTER = `environment: BULLPEN_API_URL (default http://localhost:3000), BULLPEN_API_KEY, BULLPEN_API_TIMEOUT_MS (default 30000)
exit codes: 0 ok, 1 API error, 2 bad arguments, 3 API unreachable, 4 authentication failed,
            ${EXIT_LINES_REFUSED} enqueue --file read every line but the API refused some (each is named on stderr),
              or dead --redrive|--purge left some dead letters undone (summed up on stderr)`;

const USAGE = `usage: bullpen <command> [options]     (bullpen <command> --help for one command)

${Object.values(COMMAND_USAGE)
  .map((u) => `  ${u}`)
  .join('\n')}

${FOOTER}`;

/** Whether the arguments ask for help (--help or -h), whatever else they hold. */
function asksForHelp(args: string[]): boolean {
  try {
    return parseArgs({ args, strict: false, allowPositionals: true, options: { help: { type: 'boolean', short: 'h' } } }).values.help === true;
  } catch {
    return false;
  }
}

/** The positionals of a command that takes no options. */
function positionalsOf(command: string, args: string[], count: number): string[] {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  if (positionals.length > count) throw new UsageError(`${command}: unexpected ${JSON.stringify(positionals[count])}\nusage: bullpen ${COMMAND_USAGE[command]}`);
  return positionals;
}

export async function run(argv: string[], env: Readonly<Record<string, string | undefined>>, io: Out): Promise<number> {
  // `npx bullpen -- --help`: npm 11 passes on the `--` that older npm took as its own. Only a
  // leading one is dropped; after the command, `--` keeps its meaning for the command's options.
  const [command, ...rest] = argv[0] === '--' ? argv.slice(1) : argv;
  try {
    if (!command || command === '--help' || command === '-h' || command === 'help') {
      const about = command === 'help' ? rest[0] : undefined;
      const usage = about === undefined ? undefined : COMMAND_USAGE[about];
      if (about !== undefined && usage === undefined) throw new UsageError(`help: unknown command ${JSON.stringify(about)}\n${USAGE}`);
      io.out(usage === undefined ? USAGE : `usage: bullpen ${usage}\n\n${FOOTER}`);
      return command ? 0 : 2;
    }
    const usage = COMMAND_USAGE[command];
    if (usage !== undefined && asksForHelp(rest)) {
      io.out(`usage: bullpen ${usage}\n\n${FOOTER}`);
      return 0;
    }
    if (command === 'report') return await report(rest, io);
    const client = new ApiClient(loadCliConfig(env));
    switch (command) {
      case 'enqueue':
        return await enqueue(rest, client, io);
      case 'job': {
        const [lane, id] = positionalsOf('job', rest, 2);
        if (!lane || !id) throw new UsageError('job: expected <lane> <id>');
        const res = await client.request<unknown>('GET', `/v1/lanes/${encodeURIComponent(lane)}/jobs/${encodeURIComponent(id)}`);
        io.out(JSON.stringify(res.body, null, 2));
        return 0;
      }
      case 'lanes': {
        positionalsOf('lanes', rest, 0);
        const res = await client.request<unknown>('GET', '/v1/lanes');
        io.out(JSON.stringify(res.body, null, 2));
        if (countsWithheld(res.body)) {
          io.err('bullpen: lanes are shared by every tenant: their counts are shown to operator tenants only (API_OPERATOR_TENANTS)\n');
        }
        return 0;
      }
      case 'pause':
      case 'resume':
        return await setPaused(command, rest, client, io);
      case 'dead':
        return await dead(rest, client, io);
      default:
        throw new UsageError(`unknown command ${JSON.stringify(command)}\n${USAGE}`);
    }
  } catch (err) {
    if (err instanceof UsageError || err instanceof ApiError) {
      io.err(`bullpen: ${err.message}\n`);
      return err.exitCode;
    }
    if (err instanceof TypeError && (err as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS')) {
      io.err(`bullpen: ${err.message}\n`);
      return 2;
    }
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT' || e.code === 'EACCES') {
      io.err(`bullpen: ${e.message}\n`);
      return 2;
    }
    throw err;
  }
}

/**
 * Runs the command line of this process and exits with its code (the `bullpen` bin calls this).
 * It exits only once stdout and stderr have handed everything to the OS: a write to a pipe (`| jq`,
 * `$(...)`) completes asynchronously, and exiting at once cut a long answer short with exit code 0.
 */
export function main(): void {
  // A reader that went away (`| head`) can take no more: the command still ends with its own code.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', ignoreClosedReader);
  run(process.argv.slice(2), process.env, {
    out: (s) => process.stdout.write(`${s}\n`),
    err: (s) => process.stderr.write(s),
    tty: process.stderr.isTTY === true,
  })
    .catch((err: unknown) => {
      process.stderr.write(`bullpen: ${(err as Error).stack ?? String(err)}\n`);
      return 1;
    })
    .then(async (code) => {
      process.exitCode = code;
      await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
      // Nothing of the command is left to wait for; a kept-alive connection must not hold the exit.
      process.exit(code);
    });
}

/** Resolves once everything written to `stream` before has been handed to the OS (or failed). */
function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => stream.write('', () => resolve()));
}

function ignoreClosedReader(err: NodeJS.ErrnoException): void {
  if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_DESTROYED') throw err;
}

if (require.main === module) main();

/** Whether GET /v1/lanes withheld the counts (counts: null): the key's tenant is not an operator. */
function countsWithheld(body: unknown): boolean {
  const lanes = (body as { lanes?: unknown } | null)?.lanes;
  return Array.isArray(lanes) && lanes.some((lane) => (lane as { counts?: unknown } | null)?.counts === null);
}
