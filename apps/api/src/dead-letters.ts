// A lane's dead letters: the jobs in its BullMQ failed set, which bullpen's worker fills with
// terminal failures. Each tenant lists, redrives and purges only its own; another tenant's job is
// "not found", exactly as in job-access.ts. A redrive or purge claims each job first, so that two
// calls never act on one job at once: BullMQ removes a job in any state, and a purge that found a
// job dead must not delete it after a concurrent redrive has put it back to work. A job another call
// holds is answered `claimed`, never passed over as if it were no dead letter: the caller must
// know to come back for it. When the API stops, a call under way ends after its batch (stop());
// when Redis fails it, it answers with what its batches did as well (redisFailed()).
// A call for all is bounded by failure time (failedBefore, its start by default) and says the bound
// in every answer: sent again with it, a call ended early does the rest and nothing twice, as the
// jobs it redrove that died again since have failed after the bound.
import { Job, type Queue } from 'bullmq';
import type { RedisClient } from '@bullpen/core';
import { jobKeys, laneStateKeys, unwrapJobData, type BullpenConfig } from '@bullpen/core';
import { DeadCursorCodec, type DeadCursor } from './dead-cursor';
import { overloaded, redisFailed, stopped } from './dead-letter-problems';
import { redriveDeadLetter } from './dead-letter-redrive';
import { removeJob } from './job-removal';
import { JobsInFlight } from './jobs-in-flight';
import type { LaneRegistry } from './lane-registry';
import type { RedisGuard } from './redis-guard';
import { ProblemError, type ActionResult } from './problem';
import {
  deadLetterView,
  type DeadLetter,
  type DeadLetterPage,
  type PurgeResult,
  type PurgeStatus,
  type RedriveResult,
  type RedriveStatus,
} from './views';

/** Attempt history is read from the newest log rows, as for GET /jobs/:id. */
const MAX_LOG_ROWS = 200;
/**
 * How long a redrive or purge holds its claim on a job at most; each acts within the API's 1 s
 * Redis bound, so a claim outlives its call only when the API died holding it (SIGKILL, or a
 * connection to Redis lost before the claim was given back).
 */
export const DEAD_LETTER_CLAIM_MS = 30_000;
/**
 * How many submitted jobs one redriven or purged job counts as among the jobs on their way to
 * Redis: a submission is about one call per job (its add), a redrive five (claim, data, fields,
 * retry, release) and a purge three (claim, removal, release). Counted as one, forty redrives of
 * 200 at once took the room of eight bulks of 1,000 and timed out half of themselves on a 2-core
 * machine.
 */
export const DEAD_LETTER_WEIGHT = 5;
/** What a cursor that this API did not give for this tenant and lane is answered with. */
export const DEAD_CURSOR_MESSAGE = 'expected the nextCursor of a previous page';

/** Ids a job may have; anything else (a colon, say) cannot name a job hash (as in job-access.ts). */
const JOB_ID = /^[A-Za-z0-9_.-]{1,256}$/;

export type { DeadCursor } from './dead-cursor';

export interface DeadLettersOptions {
  /**
   * Failed-set entries read per round trip (besides the rest of a run of equal failure times), and
   * jobs redriven or purged at once; default 200.
   */
  batchSize?: number;
  /**
   * Entries of all tenants one page may scan before it answers with fewer than `limit` items and
   * a cursor, so that a tenant with few dead letters among many cannot make one request slow;
   * default 2,000.
   */
  maxScannedPerPage?: number;
}

export interface DeadLettersDeps {
  config: BullpenConfig;
  redis: RedisClient;
  guard: RedisGuard;
  lanes: LaneRegistry;
  /**
   * The room among the jobs on their way to Redis that submissions share (API_MAX_INFLIGHT_JOBS):
   * each batch of a redrive or purge takes its share before it reads or writes anything, so that
   * a large one, or many at once, cannot flood Redis and time out the submissions sent with them.
   * Default: room of its own with the config's limit.
   */
  inFlight?: JobsInFlight;
}

type Entry = DeadCursor;

interface EntryBatch {
  entries: Entry[];
  /** No entry follows the last one of this batch (as of this read). */
  last: boolean;
}

/** What a per-id action found; `act` only runs on jobs that are this tenant's and dead. */
type Selected = { id: string; job: Job } | { id: string; status: 'not_found' | 'not_dead' };

/** Redis orders members of equal score by their bytes. */
function compareIds(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Whether `entry` comes after `position` in newest-first order. */
function isAfter(entry: Entry, position: DeadCursor): boolean {
  return entry.score < position.score || (entry.score === position.score && compareIds(entry.id, position.id) < 0);
}

export class DeadLetters {
  private readonly batchSize: number;
  private readonly maxScannedPerPage: number;
  private readonly inFlight: JobsInFlight;
  private readonly cursors: DeadCursorCodec;
  /** Set by stop(): each redrive or purge under way ends after its batch, and new ones are refused. */
  private stopping = false;
  /** The redrives and purges under way, which stop() waits for. */
  private readonly running = new Set<Promise<unknown>>();

  constructor(
    private readonly deps: DeadLettersDeps,
    options: DeadLettersOptions = {},
  ) {
    this.batchSize = options.batchSize ?? 200;
    this.maxScannedPerPage = options.maxScannedPerPage ?? 2000;
    this.inFlight = deps.inFlight ?? new JobsInFlight(deps.config.apiMaxInflightJobs, deps.config.apiInflightWaitMs);
    this.cursors = new DeadCursorCodec(deps.redis, deps.config.prefix);
  }

  /**
   * Newest first, from just after `cursor` (the nextCursor of a previous page of this tenant and
   * lane); only `tenant`'s jobs. The cursor is sealed (dead-cursor.ts): a page may end at another
   * tenant's entry, whose id and failure time the client must not learn.
   */
  async list(lane: string, tenant: string, { limit, cursor: sealed }: { limit: number; cursor?: string }): Promise<DeadLetterPage> {
    const scope = { tenant, lane };
    const cursor = sealed === undefined ? undefined : await this.deps.guard.run(() => this.cursors.open(sealed, scope));
    if (sealed !== undefined && !cursor) {
      throw new ProblemError('validation_failed', 'The query is invalid', {
        errors: [{ field: 'query.cursor', message: DEAD_CURSOR_MESSAGE }],
      });
    }
    const queue = this.deps.lanes.queue(lane);
    const items: DeadLetter[] = [];
    let scanned = 0;
    for await (const { entries, last } of this.scan(lane, cursor)) {
      const budget = entries.slice(0, this.maxScannedPerPage - scanned);
      const jobs = await this.load(queue, budget.map((entry) => entry.id));
      // Take visible jobs in order until the page is full; the page ends at the last entry looked at.
      const taken: Job[] = [];
      let end = 0;
      while (end < budget.length && items.length + taken.length < limit) {
        const job = jobs[end];
        if (job && this.visible(job, tenant)) taken.push(job);
        end += 1;
      }
      const logs = await this.deps.guard.run(() =>
        Promise.all(taken.map((job) => queue.getJobLogs(String(job.id), 0, MAX_LOG_ROWS - 1, false))),
      );
      // Newest first from BullMQ; the history reads oldest first.
      taken.forEach((job, i) => items.push(deadLetterView(job, [...(logs[i]?.logs ?? [])].reverse())));
      scanned += end;
      const stop = items.length >= limit || scanned >= this.maxScannedPerPage;
      if (!stop) continue;
      const through = budget[end - 1];
      const more = !(last && end === entries.length);
      const nextCursor = more && through ? await this.deps.guard.run(() => this.cursors.seal(through, scope)) : null;
      return { items, nextCursor };
    }
    return { items, nextCursor: null };
  }

  /**
   * Puts dead jobs back in the lane with fresh attempts and a fresh deadline; their attempt
   * history stays. Admission (maxQueueSize) does not apply: this is an operator's action.
   * Without `ids`, every dead letter of `tenant` that failed at or before `failedBefore` (ms since
   * the epoch; default: when the call starts).
   */
  async redrive(lane: string, tenant: string, ids?: readonly string[], failedBefore?: number): Promise<RedriveResult> {
    const policy = this.deps.config.lanes[lane];
    if (!policy) throw new Error(`unknown lane ${lane}`);
    const bound = ids ? undefined : (failedBefore ?? Date.now());
    return this.track(async () => {
      const results = await this.apply<RedriveStatus>(lane, tenant, ids, bound, 'redrive', (job) =>
        this.claimed(lane, job, () => redriveDeadLetter(this.deps, job, policy)),
      );
      const { count, rest } = await this.tally(lane, results, bound);
      return { lane, redriven: count('redriven'), ...rest, results };
    });
  }

  /**
   * Removes dead jobs with their history; their idempotency keys go on naming them
   * (job-removal.ts). Without `ids`, every dead letter of `tenant` that failed at or before
   * `failedBefore` (default: when the call starts).
   */
  async purge(lane: string, tenant: string, ids?: readonly string[], failedBefore?: number): Promise<PurgeResult> {
    const { redis, config } = this.deps;
    const target = { redis, queue: this.deps.lanes.queue(lane), prefix: config.prefix, lane, eventsMaxLen: config.eventsMaxLen };
    const bound = ids ? undefined : (failedBefore ?? Date.now());
    return this.track(async () => {
      const results = await this.apply<PurgeStatus>(lane, tenant, ids, bound, 'purge', (job) =>
        this.claimed(lane, job, async () => {
          // Found dead before the claim: removed only while still dead, as a redrive may have taken
          // it back to work since, and retention may have removed it.
          const removal = await removeJob(target, String(job.id), ['failed']);
          return removal.kind === 'removed' ? 'purged' : removal.kind === 'kept' ? 'not_dead' : 'not_found';
        }),
      );
      const { count, rest } = await this.tally(lane, results, bound);
      return { lane, purged: count('purged'), ...rest, results };
    });
  }

  /**
   * For a stopping API: ends each redrive and purge under way after the batch it is on (it answers
   * api_stopping with the results so far) and refuses new ones; resolves, with how many were under
   * way, once each has ended and given back its claims. A call cut off mid-batch instead (the HTTP
   * server's grace is over, the process exits) would leave its claims to expire, and the dead
   * letters they hold would be answered claimed to every call for DEAD_LETTER_CLAIM_MS.
   */
  async stop(): Promise<number> {
    this.stopping = true;
    const running = [...this.running];
    await Promise.allSettled(running);
    return running.length;
  }

  private async track<T>(call: () => Promise<T>): Promise<T> {
    const running = call();
    this.running.add(running);
    try {
      return await running;
    } finally {
      this.running.delete(running);
    }
  }

  /**
   * What a redrive or purge answers beside its own count and its results: the other statuses
   * counted, when the claims other calls hold end, and the bound of a call for all.
   */
  private async tally<S extends string>(lane: string, results: readonly ActionResult<S>[], bound: number | undefined) {
    const count = (status: S | 'not_found' | 'not_dead' | 'claimed') => results.filter((r) => r.status === status).length;
    const claimed = count('claimed');
    const retryAfterSeconds = claimed > 0 ? await this.claimsEndIn(lane, results) : undefined;
    const rest = {
      notFound: count('not_found'),
      notDead: count('not_dead'),
      claimed,
      ...(retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}),
      ...(bound !== undefined ? { failedBefore: bound } : {}),
    };
    return { count, rest };
  }

  /** Seconds until the claims on the dead letters answered claimed in `results` have all ended, at the latest (at least 1). */
  private async claimsEndIn(lane: string, results: readonly ActionResult<string>[]): Promise<number> {
    const { redis, guard, config } = this.deps;
    const held = results.filter((r) => r.status === 'claimed').map((r) => jobKeys(config.prefix, lane, r.id).deadLetterClaim);
    const ttls = await guard.run(() => Promise.all(held.map((key) => redis.pttl(key)))).catch(() => [DEAD_LETTER_CLAIM_MS]);
    return Math.max(1, ...ttls.map((ms) => Math.ceil(ms / 1000)));
  }

  /**
   * The failed set newest first, in batches of at most batchSize, from just after `after`, or from
   * the newest that failed at or before `failedBefore` (the bound is Redis's, not a filter on what
   * was read: the newer entries are never read, however many there are). Each
   * read continues strictly after the last entry given, by (score, id), never by an offset: an
   * offset counts entries already passed, and shifts when another call removes some of them.
   * Redis cannot start a read after an id within a score, so the rest of the last entry's score
   * is read whole, in one reply, with the next entries of lower scores: dead letters often share
   * a failure time (BullMQ's stalled-job checker fails many jobs in one millisecond), and a run
   * of n of them costs one reply of n ids, read once per walk (once per page when listing).
   */
  private async *scan(lane: string, after: DeadCursor | undefined, failedBefore?: number): AsyncGenerator<EntryBatch> {
    const { redis, guard, config } = this.deps;
    const key = laneStateKeys(config.prefix, lane).failed;
    let position = after;
    for (;;) {
      const from = position;
      const [tied, older] = await guard.run(() =>
        Promise.all([
          from ? redis.zrevrangebyscore(key, from.score, from.score) : Promise.resolve([]),
          redis.zrevrangebyscore(key, from ? `(${from.score}` : (failedBefore ?? '+inf'), '-inf', 'WITHSCORES', 'LIMIT', 0, this.batchSize),
        ]),
      );
      const entries: Entry[] = from ? tied.map((id) => ({ id, score: from.score })).filter((entry) => isAfter(entry, from)) : [];
      for (let i = 0; i + 1 < older.length; i += 2) entries.push({ id: older[i] as string, score: Number(older[i + 1]) });
      // Nothing follows the entries of lower scores read unless they filled their batch.
      const last = older.length < 2 * this.batchSize;
      for (let start = 0; start < entries.length; start += this.batchSize) {
        yield { entries: entries.slice(start, start + this.batchSize), last: last && start + this.batchSize >= entries.length };
      }
      if (last) return;
      position = entries[entries.length - 1];
    }
  }

  /** The jobs of `ids`, in order; undefined where there is no job hash. */
  private load(queue: Queue, ids: readonly string[]): Promise<(Job | undefined)[]> {
    // Issued together, the reads share one round trip on the connection.
    return this.deps.guard.run(() => Promise.all(ids.map((id) => Job.fromId(queue, id))));
  }

  private visible(job: Job, tenant: string): boolean {
    if (typeof job.name !== 'string' || !Number.isFinite(job.timestamp)) return false;
    const { meta } = unwrapJobData(job.data);
    // Jobs added by plain BullMQ producers carry no tenant: only visible without authentication.
    return meta ? meta.tenant === tenant : this.deps.config.authDisabled;
  }

  /**
   * Runs `act` on each selected job, a batch at a time; one result per id (or per dead letter
   * found). Each batch is done whole before the next starts, and takes its room among the jobs on
   * their way to Redis before it reads anything: a batch that gets none in time ends the call with
   * api_overloaded, which lists the results of the batches done before it (none touched after).
   * A stopping API (stop()) ends the call the same way between batches, with api_stopping, and so
   * does Redis failing it (redisFailed()), which also says that the batch it cut short may or may
   * not have been done. Without `ids`, the dead letters that failed at or before `failedBefore`.
   */
  private async apply<S extends string>(
    lane: string,
    tenant: string,
    ids: readonly string[] | undefined,
    failedBefore: number | undefined,
    action: 'redrive' | 'purge',
    act: (job: Job) => Promise<S | 'not_found' | 'not_dead' | 'claimed'>,
  ): Promise<ActionResult<S | 'not_found' | 'not_dead' | 'claimed'>[]> {
    const results: ActionResult<S | 'not_found' | 'not_dead' | 'claimed'>[] = [];
    /** The dead letters of the batch whose writes are under way; 0 between batches and while reading. */
    let pending = 0;
    const run = async (selected: readonly Selected[]) => {
      const outcomes = await this.deps.guard.run(() => {
        pending = selected.length;
        return Promise.all(selected.map(async (item) => ({ id: item.id, status: 'job' in item ? await act(item.job) : item.status })));
      });
      pending = 0;
      results.push(...outcomes);
    };
    const withRoom = async <T>(jobs: number, step: () => Promise<T>): Promise<T> => {
      if (this.stopping) throw stopped(action, results, failedBefore);
      const weight = jobs * DEAD_LETTER_WEIGHT;
      try {
        await this.inFlight.enter(weight);
      } catch {
        throw overloaded(action, this.inFlight.limit, results, failedBefore);
      }
      try {
        // The API may have begun to stop while this batch waited for room.
        if (this.stopping) throw stopped(action, results, failedBefore);
        return await step();
      } finally {
        this.inFlight.leave(weight);
      }
    };
    try {
      if (ids) {
        for (let start = 0; start < ids.length; start += this.batchSize) {
          const batch = ids.slice(start, start + this.batchSize);
          await withRoom(batch.length, async () => run(await this.select(lane, tenant, batch)));
        }
        return results;
      }
      const queue = this.deps.lanes.queue(lane);
      const pages = this.scan(lane, undefined, failedBefore);
      try {
        // A page holds at most batchSize dead letters: its room is taken before it is read.
        while (
          await withRoom(this.batchSize, async () => {
            const page = await pages.next();
            if (page.done) return false;
            const jobs = await this.load(queue, page.value.entries.map((entry) => entry.id));
            const selected: Selected[] = [];
            for (const job of jobs) if (job && this.visible(job, tenant)) selected.push({ id: String(job.id), job });
            await run(selected);
            return true;
          })
        );
        return results;
      } finally {
        await pages.return(undefined);
      }
    } catch (err) {
      // Answered as an outage alone, this would read "nothing was done" and give no bound: the
      // client's only resend, `{}`, would redrive again the jobs these batches redrove that have
      // died since.
      throw redisFailed(action, err, pending, results, failedBefore);
    }
  }

  /** Classifies listed ids: another tenant's job, or no job, is not_found; a live job is not_dead. */
  private async select(lane: string, tenant: string, ids: readonly string[]): Promise<Selected[]> {
    const { redis, guard, config } = this.deps;
    const queue = this.deps.lanes.queue(lane);
    const failedKey = laneStateKeys(config.prefix, lane).failed;
    // An id that names one of the lane's own keys (meta, wait, ...) is no job.
    const candidates = ids.map((id) => JOB_ID.test(id) && !Object.hasOwn(queue.keys, id));
    const found = await guard.run(() =>
      Promise.all(
        ids.map((id, i) =>
          candidates[i] ? Promise.all([Job.fromId(queue, id), redis.zscore(failedKey, id)]) : Promise.resolve(undefined),
        ),
      ),
    );
    return ids.map((id, i): Selected => {
      const [job, score] = found[i] ?? [undefined, null];
      if (!job || !this.visible(job, tenant)) return { id, status: 'not_found' };
      if (score === null) return { id, status: 'not_dead' };
      return { id, job };
    });
  }

  /**
   * Runs `act` holding the job's dead-letter claim. A job another call holds is left to it and
   * answered claimed: that call may redrive or purge it, or may have died holding it, in which
   * case it is still dead once the claim expires.
   */
  private async claimed<S extends string>(
    lane: string,
    job: Job,
    act: () => Promise<S | 'not_dead' | 'not_found'>,
  ): Promise<S | 'not_dead' | 'not_found' | 'claimed'> {
    const { redis, config } = this.deps;
    const claim = jobKeys(config.prefix, lane, String(job.id)).deadLetterClaim;
    if ((await redis.set(claim, '1', 'PX', DEAD_LETTER_CLAIM_MS, 'NX')) !== 'OK') return 'claimed';
    try {
      return await act();
    } finally {
      // A claim that cannot be given back expires on its own.
      await redis.del(claim).catch(() => undefined);
    }
  }
}
