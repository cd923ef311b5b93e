// `bullpen dead <lane> --redrive|--purge`: requests to the API, which works through the dead
// letters in batches. A call the API ended between two batches (api_overloaded, api_stopping, or
// Redis failing, redis_unavailable) says what it did, and touched nothing after: it is sent again
// for the rest, after its Retry-After (so is one for all whose batch Redis did not answer), and
// what every call did is printed as one answer. --ids beyond what one call takes are sent in
// several calls, one after the other. A call for --all is bounded by failure time (failedBefore):
// the API's clock when the first call started, which every call sent again keeps, so that the
// jobs an earlier call redrove, and that have died again since, are not redriven a second time.
// A command that ends before the work is done prints that bound as the command to run again
// (--failed-before). Dead letters left undone (held by another call, or taken out of the dead
// letters meanwhile) are summed up on stderr with exit code 5.
import { ApiError, ApiUnreachableError, OutcomeUnknownError, type ApiClient } from './api-client';
import type { Out } from './io';

/** Exit code when the API answered but some of the dead letters were not redriven or purged. */
export const EXIT_DEAD_LETTERS_LEFT = 5;

/** How many times a redrive or purge is sent again after the API ended it between batches. */
export const DEAD_ACTION_RETRIES = 30;

/** The most ids the API takes in one redrive or purge (its MAX_DEAD_IDS); more are sent in several calls. */
export const DEAD_IDS_MAX = 1000;

/** Refusals after which nothing more than the answer's `results` was done: sending it again is safe. */
const ENDED_BETWEEN_BATCHES = new Set(['api_overloaded', 'api_stopping', 'redis_unavailable']);

/**
 * Redis did not answer (or refused partway) the writes of a batch, which may or may not have been done: sending again
 * ids it may have redriven could redrive twice a job that has died since, but a call for all sent
 * again with its bound (failedBefore) leaves such a job alone.
 */
const BATCH_UNANSWERED = 'redis_timeout';

/** How long to wait for an API that stopped answering mid-run (it is restarting) before trying again. */
const RESTART_WAIT_SECONDS = 1;

interface ActionResult {
  id: string;
  status: string;
}

interface ActionAnswer {
  lane?: string;
  retryAfterSeconds?: number;
  /** For all: the bound on failure times the call used. */
  failedBefore?: number;
  results: ActionResult[];
}

export interface DeadActionOptions {
  action: 'redrive' | 'purge';
  lane: string;
  /** The dead letters to act on; undefined for all of the caller's in the lane (--all). */
  ids: string[] | undefined;
  /**
   * For --all: only the dead letters that failed at or before this time, in ms since the epoch
   * (--failed-before, as an earlier command printed it); default: when the first call starts, by
   * the API's clock.
   */
  failedBefore?: number | undefined;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function isResults(value: unknown): value is ActionResult[] {
  return Array.isArray(value) && value.every((r) => typeof r === 'object' && r !== null && typeof (r as ActionResult).id === 'string' && typeof (r as ActionResult).status === 'string');
}

function isAnswer(body: unknown): body is ActionAnswer {
  return typeof body === 'object' && body !== null && isResults((body as ActionAnswer).results);
}

/** `36192 redriven, not_dead: 200` style counts of each status. */
function counts(results: readonly ActionResult[]): Map<string, number> {
  const byStatus = new Map<string, number>();
  for (const r of results) byStatus.set(r.status, (byStatus.get(r.status) ?? 0) + 1);
  return byStatus;
}

/** The command that acts again on the dead letters of a call for all, ready to paste. */
function rerunCommand(action: 'redrive' | 'purge', lane: string, failedBefore: number): string {
  return `bullpen dead ${shellWord(lane)} --${action} --all --failed-before ${failedBefore}`;
}

function shellWord(word: string): string {
  return /^[\w.,:@%+=/-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export async function deadAction({ action, lane, ids, failedBefore: given }: DeadActionOptions, client: ApiClient, io: Out): Promise<number> {
  const done = action === 'redrive' ? 'redriven' : 'purged';
  const flag = `dead ${lane} --${action}${ids ? '' : ' --all'}`;
  const base = `/v1/lanes/${encodeURIComponent(lane)}/dead`;
  const path = action === 'redrive' ? `${base}/redrive` : base;
  const results: ActionResult[] = [];
  /** The ids not sent yet, or that a call the API ended early did not reach. */
  let remaining = ids;
  /** For --all: the bound every call sends once it is known (--failed-before, or the first answer's). */
  let failedBefore = given;
  // A call for all with no bound given takes the API's clock at its start as its bound. Should no
  // answer come to say it, the API's clock before that call, to the second, is a bound no later:
  // a command run again with it leaves alone the jobs the unanswered call redrove that have died
  // again since. It is the API's clock, not this machine's, that failure times are comparable
  // with (the README asks API and worker hosts to keep theirs in sync).
  const clockBefore = !ids && given === undefined ? (await client.request<unknown>('GET', `${base}?limit=1`)).dateMs : undefined;
  const rerunBound = () => failedBefore ?? clockBefore;
  let answered = false;
  let answeredLane: string | undefined;
  /** When the claims of the dead letters answered claimed end, at the latest. */
  let retryAfterSeconds: number | undefined;
  const take = (answer: ActionAnswer) => {
    results.push(...answer.results);
    answered = true;
    if (typeof answer.lane === 'string') answeredLane = answer.lane;
    if (typeof answer.retryAfterSeconds === 'number') retryAfterSeconds = Math.max(retryAfterSeconds ?? 0, answer.retryAfterSeconds);
    if (!ids && failedBefore === undefined && Number.isSafeInteger(answer.failedBefore)) failedBefore = answer.failedBefore;
  };
  const summary = () => {
    const byStatus = counts(results);
    const others = [...byStatus].filter(([status]) => status !== done);
    return { n: byStatus.get(done) ?? 0, others, left: others.reduce((sum, [, n]) => sum + n, 0) };
  };
  const print = () => {
    const byStatus = counts(results);
    const count = (status: string) => byStatus.get(status) ?? 0;
    io.out(
      JSON.stringify(
        {
          lane: answeredLane ?? lane,
          [done]: count(done),
          notFound: count('not_found'),
          notDead: count('not_dead'),
          claimed: count('claimed'),
          ...(count('claimed') > 0 && retryAfterSeconds !== undefined ? { retryAfterSeconds } : {}),
          ...(!ids && failedBefore !== undefined ? { failedBefore } : {}),
          results,
        },
        null,
        2,
      ),
    );
  };
  /** For --all: how to act on the rest without acting twice on a job, once a bound is known. */
  const rerun = (): string | undefined => {
    const bound = rerunBound();
    return ids || bound === undefined ? undefined : rerunCommand(action, lane, bound);
  };

  for (let retries = 0; ; ) {
    const batch = remaining?.slice(0, DEAD_IDS_MAX);
    try {
      const body = batch ? { ids: batch } : failedBefore !== undefined ? { failedBefore } : {};
      const res = action === 'redrive' ? await client.request<unknown>('POST', path, body) : await client.request<unknown>('DELETE', path, body);
      if (!isAnswer(res.body)) throw new ApiError(`unexpected answer to ${flag}: ${JSON.stringify(res.body).slice(0, 200)}`, res.status, 1);
      take(res.body);
      if (remaining && batch) remaining = remaining.slice(batch.length);
      if (!remaining || remaining.length === 0) break;
    } catch (err) {
      const ended =
        err instanceof ApiError &&
        isAnswer(err.body) &&
        (ENDED_BETWEEN_BATCHES.has(err.code ?? '') || (err.code === BATCH_UNANSWERED && !ids && Number.isSafeInteger(err.body.failedBefore)));
      // Nothing reached an API that answered before: it is restarting, and nothing was done.
      const gone = err instanceof ApiUnreachableError && answered;
      if (ended) {
        const partial = err.body as ActionAnswer;
        take(partial);
        // Its results are those of the first ids sent, in order; the rest were not touched.
        if (remaining) remaining = remaining.slice(partial.results.length);
        if (remaining?.length === 0) break;
      }
      if (err instanceof OutcomeUnknownError) {
        if (results.length > 0) print();
        throw new OutcomeUnknownError(`${err.message}. An API still running goes on with it. ${afterUnknownOutcome(action, ids !== undefined, rerun())}`);
      }
      if (!(ended || gone) || retries >= DEAD_ACTION_RETRIES) {
        if (results.length > 0) {
          print();
          const again = rerun();
          io.err(`bullpen: ${flag}: ${summary().n} ${done} before this error; the others were not touched${again ? `: to ${action} them, run ${again}` : ''}\n`);
        }
        throw err;
      }
      retries += 1;
      const seconds = ended ? ((err as ApiError).retryAfterSeconds ?? 1) : RESTART_WAIT_SECONDS;
      const why = ended ? `${(err as ApiError).code} after ${results.length} dead letters (${summary().n} ${done} so far)` : (err as ApiError).message;
      io.err(`bullpen: ${flag}: ${why}; sending it again for the rest in ${seconds} s (retry ${retries} of ${DEAD_ACTION_RETRIES})\n`);
      await sleep(seconds * 1000);
    }
  }

  print();
  const { n, others, left } = summary();
  if (left === 0) return 0;
  const claimed = others.find(([status]) => status === 'claimed')?.[1] ?? 0;
  const reasons = others.map(([status, k]) => `${status}: ${k}`).join(', ');
  const again = rerun();
  const advice =
    claimed > 0
      ? `claimed ones are held by another redrive or purge, or by one an API restart cut off; run ${again ?? 'the same command again'} in ${retryAfterSeconds ?? 30} s`
      : ids
        ? 'those ids name no dead letter of yours (not_found: no job of yours; not_dead: a job that is not dead)'
        : `another call took them out of the dead letters meanwhile; to act on any still dead, run ${again ?? 'the same command again'}`;
  io.err(`bullpen: ${flag}: ${n} ${done}, ${left} not (${reasons}): ${advice}\n`);
  return EXIT_DEAD_LETTERS_LEFT;
}

/** What running the command again does after a call that got no answer. */
function afterUnknownOutcome(action: 'redrive' | 'purge', byIds: boolean, again: string | undefined): string {
  const held = 'those a call still under way holds are answered claimed';
  if (byIds) {
    return action === 'purge'
      ? `Running the same command again is safe: ids purged already are answered not_found, and ${held}`
      : `Running the same command again redrives those of the ids that are dead then: ids redriven already are answered not_dead, ` +
          `unless their job has failed again since (then it is redriven again), and ${held}`;
  }
  if (again === undefined) {
    // No answer of the API had a Date: its clock, which failure times are compared with, is unknown.
    return `Its bound on failure times is unknown: the same command run again acts on every dead letter then, ` +
      `${action === 'redrive' ? 'including jobs this call redrove that have failed again since, and ' : ''}${held}`;
  }
  return `To ${action} the rest, run ${again}: it acts only on the dead letters that failed by then and are still there` +
    `${action === 'redrive' ? ', so no job this call redrove that has failed again since is redriven twice' : ''}, and ${held}`;
}
