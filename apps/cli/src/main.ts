#!/usr/bin/env node
// `bullpen`: the operator CLI. Commands: report, enqueue, job, lanes, dead.
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { ApiClient, ApiError, UnexpectedAnswerError } from './api-client';
import { loadCliConfig, UsageError } from './config';
import { dead, DEAD_USAGE } from './dead';
import type { Out } from './io';
import { buildReport, formatReport } from './report';

const USAGE = `usage: bullpen <command> [options]

  report <events.jsonl...> [--window 24h] [--since ISO] [--until ISO] [--json]
  enqueue <lane> <name> [--data JSON] [--idempotency-key KEY]
  enqueue <lane> --file jobs.jsonl          (one {"name":..,"data":..} per line; sent in batches)
  job <lane> <id>
  lanes
  ${DEAD_USAGE}

environment: BULLPEN_API_URL (default http://localhost:3000), BULLPEN_API_KEY
exit codes: 0 ok, 1 API error, 2 bad arguments, 3 API unreachable, 4 authentication failed`;

export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) throw new UsageError(`--window: expected a duration like 30m, 24h or 7d, got ${JSON.stringify(text)}`);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}

function parseTime(flag: string, text: string): number {
  const t = Date.parse(text);
  if (!Number.isFinite(t)) throw new UsageError(`${flag}: expected an ISO timestamp, got ${JSON.stringify(text)}`);
  return t;
}

async function report(args: string[], io: Out): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { window: { type: 'string' }, since: { type: 'string' }, until: { type: 'string' }, json: { type: 'boolean' } },
  });
  if (positionals.length === 0) throw new UsageError('report: expected at least one events file');
  const to = values.until ? parseTime('--until', values.until) : Date.now();
  const from = values.since ? parseTime('--since', values.since) : to - parseDuration(values.window ?? '24h');
  const result = await buildReport(positionals, { from, to });
  io.out(values.json ? JSON.stringify(result, null, 2) : formatReport(result));
}

async function* readJsonLines(file: string): AsyncGenerator<{ line: number; value: unknown }> {
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let n = 0;
  for await (const line of lines) {
    n += 1;
    if (line.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      value = undefined;
    }
    yield { line: n, value };
  }
}

interface BulkResult {
  results: { index: number; status: 'created' | 'replayed' | 'rejected' | 'invalid'; id?: string; code?: string }[];
}

/** Refusals after which nothing of the batch was enqueued, so that sending it again is safe. */
const NOTHING_ENQUEUED = new Set(['api_overloaded', 'redis_unavailable', 'redis_full']);
/** How many times one batch is sent again after such a refusal before the command gives up. */
const BATCH_RETRIES = 30;

/**
 * Sends one batch; while the API refuses it without enqueueing anything (it is overloaded, Redis
 * is down, or Redis is nearly full while workers drain it), waits as its Retry-After says and sends it again. A redis_timeout is not sent
 * again: its jobs may exist, and the batch carries no idempotency keys of the command's own.
 */
async function sendBatch(client: ApiClient, lane: string, batch: unknown[], io: Out): Promise<BulkResult> {
  for (let retries = 0; ; retries += 1) {
    try {
      const path = `/v1/lanes/${encodeURIComponent(lane)}/jobs/bulk`;
      const { status, body } = await client.request<BulkResult>('POST', path, { jobs: batch });
      if (!Array.isArray(body?.results) || body.results.length !== batch.length) {
        throw new UnexpectedAnswerError(`unexpected answer to POST ${path}: no result for each of the ${batch.length} jobs sent`, status);
      }
      return body;
    } catch (err) {
      if (!(err instanceof ApiError) || !NOTHING_ENQUEUED.has(err.code ?? '') || retries >= BATCH_RETRIES) throw err;
      const seconds = err.retryAfterSeconds ?? 1;
      io.err(`\nenqueue ${lane}: ${err.code}, nothing of this batch was enqueued; sending it again in ${seconds} s\n`);
      await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    }
  }
}

async function enqueueFile(client: ApiClient, lane: string, file: string, io: Out): Promise<void> {
  let accepted = 0;
  let rejected = 0;
  let sent = 0;
  const reasons = new Map<string, number>();
  let batch: unknown[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const body = await sendBatch(client, lane, batch, io);
    for (const r of body.results) {
      if (r.status === 'created' || r.status === 'replayed') accepted += 1;
      else {
        rejected += 1;
        const code = r.code ?? r.status;
        reasons.set(code, (reasons.get(code) ?? 0) + 1);
      }
    }
    sent += batch.length;
    batch = [];
    io.err(`\renqueue ${lane}: ${sent} sent, ${accepted} accepted, ${rejected} rejected`);
  };
  for await (const { value } of readJsonLines(file)) {
    if (value === undefined) {
      rejected += 1;
      reasons.set('malformed_line', (reasons.get('malformed_line') ?? 0) + 1);
      continue;
    }
    batch.push(value);
    if (batch.length >= 500) await flush();
  }
  await flush();
  io.err('\n');
  const why = [...reasons].map(([code, n]) => `${code}: ${n}`).join(', ');
  io.out(`accepted ${accepted}, rejected ${rejected}${why ? ` (${why})` : ''}`);
  if (rejected > 0 && accepted === 0) process.exitCode = 1;
}

async function enqueue(args: string[], client: ApiClient, io: Out): Promise<void> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { data: { type: 'string' }, file: { type: 'string' }, 'idempotency-key': { type: 'string' } },
  });
  const [lane, name] = positionals;
  if (!lane) throw new UsageError('enqueue: expected a lane');
  if (values.file) return enqueueFile(client, lane, values.file, io);
  if (!name) throw new UsageError('enqueue: expected a job name (or --file)');
  let data: unknown = {};
  if (values.data !== undefined) {
    try {
      data = JSON.parse(values.data);
    } catch {
      throw new UsageError('--data: expected JSON');
    }
  }
  const body = { name, data, ...(values['idempotency-key'] ? { idempotencyKey: values['idempotency-key'] } : {}) };
  const res = await client.request<unknown>('POST', `/v1/lanes/${encodeURIComponent(lane)}/jobs`, body);
  io.out(JSON.stringify(res.body, null, 2));
}

export async function run(argv: string[], env: Readonly<Record<string, string | undefined>>, io: Out): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (!command || command === '--help' || command === '-h' || command === 'help') {
      io.out(USAGE);
      return command ? 0 : 2;
    }
    if (command === 'report') {
      await report(rest, io);
      return 0;
    }
    const client = new ApiClient(loadCliConfig(env));
    switch (command) {
      case 'enqueue':
        await enqueue(rest, client, io);
        return Number(process.exitCode ?? 0);
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

if (require.main === module) {
  run(process.argv.slice(2), process.env, {
    out: (s) => process.stdout.write(`${s}\n`),
    err: (s) => process.stderr.write(s),
  }).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`bullpen: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(1);
    },
  );
}
