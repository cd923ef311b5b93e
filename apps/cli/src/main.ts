#!/usr/bin/env node
// `bullpen`: the operator CLI. Commands: report, enqueue, job, lanes, dead.
import { ApiClient, ApiError } from './api-client';
import { EXIT_LINES_REFUSED } from './bulk-enqueue';
import { loadCliConfig, UsageError } from './config';
import { dead, DEAD_USAGE } from './dead';
import { enqueue, ENQUEUE_USAGE } from './enqueue';
import type { Out } from './io';
import { report, REPORT_USAGE } from './report-command';

const USAGE = `usage: bullpen <command> [options]

  ${REPORT_USAGE}
  ${ENQUEUE_USAGE}
  job <lane> <id>
  lanes
  ${DEAD_USAGE}

environment: BULLPEN_API_URL (default http://localhost:3000), BULLPEN_API_KEY
exit codes: 0 ok, 1 API error, 2 bad arguments, 3 API unreachable, 4 authentication failed,
            ${EXIT_LINES_REFUSED} enqueue --file read every line but the API refused some (each is named on stderr)`;

export async function run(argv: string[], env: Readonly<Record<string, string | undefined>>, io: Out): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (!command || command === '--help' || command === '-h' || command === 'help') {
      io.out(USAGE);
      return command ? 0 : 2;
    }
    if (command === 'report') return await report(rest, io);
    const client = new ApiClient(loadCliConfig(env));
    switch (command) {
      case 'enqueue':
        return await enqueue(rest, client, io);
      case 'job': {
        const [lane, id] = rest;
        if (!lane || !id) throw new UsageError('job: expected <lane> <id>');
        const res = await client.request<unknown>('GET', `/v1/lanes/${encodeURIComponent(lane)}/jobs/${encodeURIComponent(id)}`);
        io.out(JSON.stringify(res.body, null, 2));
        return 0;
      }
      case 'lanes': {
        const res = await client.request<unknown>('GET', '/v1/lanes');
        io.out(JSON.stringify(res.body, null, 2));
        return 0;
      }
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

/** Runs the command line of this process and exits with its code (the `bullpen` bin calls this). */
export function main(): void {
  run(process.argv.slice(2), process.env, {
    out: (s) => process.stdout.write(`${s}\n`),
    err: (s) => process.stderr.write(s),
    tty: process.stderr.isTTY === true,
  }).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`bullpen: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}

if (require.main === module) main();
