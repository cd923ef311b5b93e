// `bullpen enqueue <lane> --file jobs.jsonl`: sends a file of jobs in bulk requests and accounts for
// every line. Batches are bounded in jobs and in bytes (the API refuses a body over its
// API_BODY_LIMIT_BYTES with 413, and a batch it refuses is split in two until a single line is
// left, which is then reported). A line the API refuses because the lane is full is sent again
// after the answer's Retry-After while the lane takes jobs at all. Each refused line is named, and
// a run that stops on an error says which lines were enqueued, which may have been, and from which
// line nothing was sent.
import { ApiError, OutcomeUnknownError, RawJson, UnexpectedAnswerError, type ApiClient } from './api-client';
import type { Out } from './io';
import { readJobLines } from './job-lines';
import { LineRanges } from './line-ranges';

export interface BulkEnqueueOptions {
  lane: string;
  file: string;
  /** --batch-size: most jobs in one request; default 500 (the API takes up to 1000). */
  batchJobs: number;
  /** --batch-bytes: most bytes in one request body; default 512 KiB, half the API's default limit. */
  batchBytes: number;
  /** --full-wait: how long lines refused as queue_full are sent again while the lane takes no job;
   * default 60 s; 0 never sends them again. */
  fullWaitMs: number;
  /** --idempotency-prefix: a line without an idempotencyKey of its own gets `<prefix>:<line>`, so
   * that running the same file again replays its jobs instead of adding them twice. */
  idempotencyPrefix: string | undefined;
}

export const BULK_DEFAULTS = { batchJobs: 500, batchBytes: 512 * 1024, fullWaitMs: 60_000 } as const;

/** Exit code of a run that read the whole file but could not enqueue every line. */
export const EXIT_LINES_REFUSED = 5;

/** Refusals after which nothing of the batch was enqueued, so that sending it again is safe. */
const NOTHING_ENQUEUED = new Set(['api_overloaded', 'redis_unavailable', 'redis_full']);
/** How many times one batch is sent again after such a refusal before the command gives up. */
const BATCH_RETRIES = 30;
/** Refused lines named one by one on stderr; the rest are counted. */
const LINES_SHOWN = 20;
/** `{"jobs":[` and `]}`. */
const ENVELOPE_BYTES = 11;

interface Item {
  line: number;
  /** The line as written, with the derived idempotency key put in. */
  text: string;
  bytes: number;
  /** Whether the job carries an idempotency key, so that sending it twice cannot add it twice. */
  keyed: boolean;
  settled: boolean;
}

interface BulkItemResult {
  index: number;
  status: 'created' | 'replayed' | 'rejected' | 'invalid';
  code?: string;
  errors?: Array<{ field: string; message: string }>;
}

function isResult(r: unknown): r is BulkItemResult {
  const x = r as Partial<BulkItemResult> | null;
  return typeof x === 'object' && x !== null && typeof x.index === 'number' && typeof x.status === 'string';
}

/**
 * A refused item's field error as the line's own: the API names fields in the bulk request
 * (`body.jobs[2].name`), whose position in a batch means nothing to whoever wrote the file, so
 * `name: …`, `data.x: …`, or only the message when the line as a whole is wrong (not an object).
 */
function fieldOfLine(field: string, index: number, message: string): string {
  const item = `body.jobs[${index}]`;
  if (!field.startsWith(item)) return `${field}: ${message}`;
  const own = field.slice(item.length).replace(/^\./, '');
  return own === '' ? message : `${own}: ${message}`;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class BulkEnqueue {
  private accepted = 0;
  /** Of the accepted, lines whose job was already in the lane (its idempotency key was seen
   * before, in an earlier run or an earlier line): nothing was added for them. */
  private replayed = 0;
  private rejected = 0;
  private sent = 0;
  private readonly reasons = new Map<string, number>();
  private readonly enqueued = new LineRanges();
  /** When the lane last took a job (or the run began), on the monotonic clock (a wall-clock step
   * would lengthen or cut the --full-wait): queue_full lines wait from here. */
  private lastProgressAt = performance.now();
  private progressShown = false;
  private readonly path: string;

  constructor(
    private readonly client: ApiClient,
    private readonly options: BulkEnqueueOptions,
    private readonly io: Out,
  ) {
    this.path = `/v1/lanes/${encodeURIComponent(options.lane)}/jobs/bulk`;
  }

  /** Sends the file; resolves with the exit code, or throws the error that stopped it (after
   * saying what was and was not enqueued). */
  async run(): Promise<number> {
    const { batchJobs, batchBytes } = this.options;
    let batch: Item[] = [];
    let batchSize = ENVELOPE_BYTES;
    /** The first line not yet sent, or undefined once the whole file was read. */
    let unsent: number | undefined = 1;
    try {
      for await (const read of readJobLines(this.options.file)) {
        if ('error' in read) {
          this.reject(read.line, 'malformed_line', read.error);
          unsent = read.line + 1;
          continue;
        }
        const item = this.item(read.line, read.text, read.value);
        if (batch.length > 0 && (batch.length >= batchJobs || batchSize + 1 + item.bytes > batchBytes)) {
          unsent = read.line;
          await this.send(batch);
          batch = [];
          batchSize = ENVELOPE_BYTES;
        }
        batch.push(item);
        batchSize += item.bytes + (batch.length > 1 ? 1 : 0);
        unsent = read.line + 1;
      }
      unsent = undefined;
      await this.send(batch);
    } catch (err) {
      this.stopped(err, batch, unsent);
      throw err;
    }
    this.endProgress();
    this.summary();
    return this.rejected > 0 ? EXIT_LINES_REFUSED : 0;
  }

  private item(line: number, text: string, value: unknown): Item {
    const prefix = this.options.idempotencyPrefix;
    const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
    const ownKey = isObject && typeof (value as { idempotencyKey?: unknown }).idempotencyKey === 'string';
    let sent = text;
    if (prefix !== undefined && isObject && !ownKey) {
      // The line stays as written; the key goes in front of its first field.
      const rest = text.slice(1).trimStart();
      sent = `{"idempotencyKey":${JSON.stringify(`${prefix}:${line}`)}${rest.startsWith('}') ? '' : ','}${rest}`;
    }
    return { line, text: sent, bytes: Buffer.byteLength(sent), keyed: ownKey || sent !== text, settled: false };
  }

  /** Sends a batch, then its lines refused as queue_full again while the lane takes jobs. */
  private async send(batch: Item[]): Promise<void> {
    let waiting = await this.deliver(batch);
    let told = false;
    while (waiting.items.length > 0) {
      const left = this.options.fullWaitMs - (performance.now() - this.lastProgressAt);
      if (left <= 0) {
        const waited = this.options.fullWaitMs / 1000;
        for (const item of waiting.items) this.reject(item.line, 'queue_full', `lane ${this.options.lane} took no job for ${waited} s (--full-wait)`);
        return;
      }
      const ms = Math.min(left, (waiting.retryAfterSeconds ?? 1) * 1000);
      if (!told) {
        this.note(`lane ${this.options.lane} is full: ${waiting.items.length} lines wait for room, sent again every ${ms / 1000} s while the lane takes jobs (up to ${this.options.fullWaitMs / 1000} s without, --full-wait)`);
        told = true;
      }
      await sleep(ms);
      waiting = await this.deliver(waiting.items);
    }
  }

  /** Sends items, splitting them on 413; settles each and returns those refused as queue_full. */
  private async deliver(items: Item[]): Promise<{ items: Item[]; retryAfterSeconds: number | undefined }> {
    if (items.length === 0) return { items: [], retryAfterSeconds: undefined };
    let answer: { status: number; body: { results?: unknown }; retryAfterSeconds: number | undefined };
    try {
      answer = await this.post(items);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 413) throw err;
      if (items.length === 1) {
        const [item] = items as [Item];
        this.reject(item.line, 'payload_too_large', `the line alone (${item.bytes} bytes) is more than the API takes in one request`);
        return { items: [], retryAfterSeconds: undefined };
      }
      const half = Math.ceil(items.length / 2);
      const first = await this.deliver(items.slice(0, half));
      const second = await this.deliver(items.slice(half));
      return { items: [...first.items, ...second.items], retryAfterSeconds: second.retryAfterSeconds ?? first.retryAfterSeconds };
    }
    const results = Array.isArray(answer.body?.results) ? answer.body.results : [];
    const byIndex = new Map<number, BulkItemResult>();
    for (const r of results) if (isResult(r)) byIndex.set(r.index, r);
    if (byIndex.size !== items.length || items.some((_, i) => !byIndex.has(i))) {
      throw new UnexpectedAnswerError(`unexpected answer to POST ${this.path}: no result for each of the ${items.length} jobs sent`, answer.status);
    }
    const full: Item[] = [];
    items.forEach((item, i) => {
      const r = byIndex.get(i) as BulkItemResult;
      if (r.status === 'created' || r.status === 'replayed') {
        this.accept(item, r.status === 'replayed');
      } else if (r.code === 'queue_full') {
        full.push(item);
      } else {
        const detail = r.errors?.map((e) => fieldOfLine(e.field, i, e.message)).join('; ');
        this.reject(item.line, r.code ?? r.status, detail, item);
      }
    });
    this.sent += items.length - full.length;
    this.progress();
    return { items: full, retryAfterSeconds: answer.retryAfterSeconds };
  }

  /**
   * One request; while the API refuses it without enqueueing anything (it is overloaded, Redis is
   * down, or Redis is nearly full while workers drain it), waits as its Retry-After says and sends
   * it again. An outcome unknown (redis_timeout, no answer) is sent again only when every job of
   * the batch carries an idempotency key, which makes a second send a replay.
   */
  private async post(items: Item[]): Promise<{ status: number; body: { results?: unknown }; retryAfterSeconds: number | undefined }> {
    const body = new RawJson(`{"jobs":[${items.map((i) => i.text).join(',')}]}`);
    const replayable = items.every((i) => i.keyed);
    for (let retries = 0; ; retries += 1) {
      try {
        return await this.client.request<{ results?: unknown }>('POST', this.path, body);
      } catch (err) {
        const unknown = err instanceof OutcomeUnknownError || (err instanceof ApiError && err.code === 'redis_timeout');
        const again = err instanceof ApiError && (NOTHING_ENQUEUED.has(err.code ?? '') || (unknown && replayable));
        if (!again || retries >= BATCH_RETRIES) throw err;
        const seconds = (err as ApiError).retryAfterSeconds ?? 1;
        const why = unknown ? 'its outcome is unknown, and each job has an idempotency key' : 'nothing of this batch was enqueued';
        this.note(`${(err as ApiError).code}, ${why}; sending it again in ${seconds} s`);
        await sleep(seconds * 1000);
      }
    }
  }

  private accept(item: Item, replayed: boolean): void {
    item.settled = true;
    this.accepted += 1;
    if (replayed) this.replayed += 1;
    this.enqueued.add(item.line);
    this.lastProgressAt = performance.now();
  }

  private reject(line: number, code: string, detail: string | undefined, item?: Item): void {
    if (item) item.settled = true;
    this.rejected += 1;
    this.reasons.set(code, (this.reasons.get(code) ?? 0) + 1);
    if (this.rejected <= LINES_SHOWN) this.note(`line ${line}: ${code}${detail ? ` (${detail})` : ''}`, false);
  }

  /** Says what the run did before `err` stopped it, and where to resume. */
  private stopped(err: unknown, batch: Item[], unsent: number | undefined): void {
    this.endProgress();
    this.summary();
    const open = batch.filter((i) => !i.settled);
    const unknown = err instanceof OutcomeUnknownError || (err instanceof ApiError && err.code === 'redis_timeout');
    const lines = new LineRanges();
    for (const i of open) lines.add(i.line);
    const parts = [`enqueue ${this.options.lane}: stopped (${err instanceof Error ? err.message : String(err)})`];
    parts.push(`  enqueued: ${this.enqueued.size > 0 ? `lines ${this.enqueued.format()}` : 'no line'}`);
    if (open.length > 0) parts.push(`  ${unknown ? 'may or may not be enqueued' : 'not enqueued'}: lines ${lines.format()}`);
    parts.push(unsent === undefined ? '  not sent: no line (the file was read to its end)' : `  not sent: line ${unsent} and after`);
    if (this.options.idempotencyPrefix === undefined) {
      parts.push('  (with --idempotency-prefix, running the file again would replay what was enqueued instead of adding it twice)');
    } else {
      parts.push(`  (run the file again with --idempotency-prefix ${this.options.idempotencyPrefix}: what was enqueued is replayed, not added twice)`);
    }
    this.io.err(`${parts.join('\n')}\n`);
  }

  private summary(): void {
    if (this.rejected > LINES_SHOWN) this.io.err(`... and ${this.rejected - LINES_SHOWN} more lines refused\n`);
    const why = [...this.reasons].map(([code, n]) => `${code}: ${n}`).join(', ');
    this.io.out(`accepted ${this.accepted}${this.replayedNote()}, rejected ${this.rejected}${why ? ` (${why})` : ''}`);
  }

  /** ` (replayed 3)`: how many accepted lines added nothing, their job being in the lane already. */
  private replayedNote(): string {
    return this.replayed > 0 ? ` (replayed ${this.replayed})` : '';
  }

  private progress(): void {
    if (!this.io.tty) return;
    this.io.err(`\renqueue ${this.options.lane}: ${this.sent} sent, ${this.accepted} accepted${this.replayedNote()}, ${this.rejected} rejected`);
    this.progressShown = true;
  }

  private endProgress(): void {
    if (this.progressShown) this.io.err('\n');
    this.progressShown = false;
  }

  /** A line on stderr, after the progress line if one is shown. */
  private note(text: string, prefixed = true): void {
    this.endProgress();
    this.io.err(`${prefixed ? `enqueue ${this.options.lane}: ` : ''}${text}\n`);
  }
}
