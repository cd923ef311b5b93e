// `bullpen enqueue`: one job from the command line, or a file of jobs in bulk (bulk-enqueue.ts).
import { stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { ApiClient } from './api-client';
import { parseBytes, parseDuration, parseInteger } from './args';
import { BULK_DEFAULTS, BulkEnqueue } from './bulk-enqueue';
import { UsageError } from './config';
import type { Out } from './io';

export const ENQUEUE_USAGE = `enqueue <lane> <name> [--data JSON] [--idempotency-key KEY]
  enqueue <lane> --file jobs.jsonl [--batch-size 500] [--batch-bytes 512k] [--full-wait 60s] [--idempotency-prefix P]
                                                one {"name":..,"data":..} per line, sent in batches`;

/** The API's most jobs in one bulk request. */
const MAX_BATCH_JOBS = 1000;
/** The API's idempotency keys are at most 200 characters; `:<line>` takes up to 11 of them. */
const MAX_KEY_CHARS = 200;
const MAX_PREFIX_CHARS = MAX_KEY_CHARS - 11;

export async function enqueue(args: string[], client: ApiClient, io: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      data: { type: 'string' },
      file: { type: 'string' },
      'idempotency-key': { type: 'string' },
      'idempotency-prefix': { type: 'string' },
      'batch-size': { type: 'string' },
      'batch-bytes': { type: 'string' },
      'full-wait': { type: 'string' },
    },
  });
  const [lane, name, ...extra] = positionals;
  if (!lane) throw new UsageError('enqueue: expected a lane');
  if (values.file !== undefined) {
    if (name !== undefined) throw new UsageError('enqueue --file: the job names are in the file; expected only a lane');
    if (values.data !== undefined || values['idempotency-key'] !== undefined) {
      throw new UsageError('enqueue --file: --data and --idempotency-key are for one job; each line of the file carries its own');
    }
    const prefix = values['idempotency-prefix'];
    if (prefix !== undefined && (prefix === '' || prefix.length > MAX_PREFIX_CHARS)) {
      throw new UsageError(`--idempotency-prefix: expected 1 to ${MAX_PREFIX_CHARS} characters`);
    }
    const info = await stat(values.file);
    if (!info.isFile()) throw new UsageError(`--file: ${values.file} is not a file`);
    const bulk = new BulkEnqueue(
      client,
      {
        lane,
        file: values.file,
        batchJobs: values['batch-size'] === undefined ? BULK_DEFAULTS.batchJobs : parseInteger('--batch-size', values['batch-size'], 1, MAX_BATCH_JOBS),
        batchBytes:
          values['batch-bytes'] === undefined ? BULK_DEFAULTS.batchBytes : parseBytes('--batch-bytes', values['batch-bytes'], 1024, 64 * 1024 * 1024),
        fullWaitMs: values['full-wait'] === undefined ? BULK_DEFAULTS.fullWaitMs : parseDuration('--full-wait', values['full-wait']),
        idempotencyPrefix: prefix,
      },
      io,
    );
    return bulk.run();
  }
  for (const flag of ['idempotency-prefix', 'batch-size', 'batch-bytes', 'full-wait'] as const) {
    if (values[flag] !== undefined) throw new UsageError(`enqueue: --${flag} is for --file`);
  }
  if (!name) throw new UsageError('enqueue: expected a job name (or --file)');
  if (extra.length > 0) throw new UsageError(`enqueue: unexpected ${JSON.stringify(extra[0])} (the payload goes in --data)`);
  const key = values['idempotency-key'];
  // An empty key (a script's unset variable) would send the job without one: each run would add it again.
  if (key !== undefined && (key === '' || key.length > MAX_KEY_CHARS)) {
    throw new UsageError(`--idempotency-key: expected 1 to ${MAX_KEY_CHARS} characters, got ${key === '' ? 'an empty key' : key.length}`);
  }
  let data: unknown = {};
  if (values.data !== undefined) {
    try {
      data = JSON.parse(values.data);
    } catch {
      throw new UsageError('--data: expected JSON');
    }
  }
  const body = { name, data, ...(key !== undefined ? { idempotencyKey: key } : {}) };
  const res = await client.request<{ id?: unknown }>('POST', `/v1/lanes/${encodeURIComponent(lane)}/jobs`, body);
  io.out(JSON.stringify(res.body, null, 2));
  // The API answers a new job 201, and a repeated idempotency key 200 with the job it names.
  if (res.status === 200) {
    io.err(`enqueue ${lane}: replayed: idempotency key ${JSON.stringify(key)} names job ${String(res.body?.id)}, already enqueued; nothing was added\n`);
  }
  return 0;
}
