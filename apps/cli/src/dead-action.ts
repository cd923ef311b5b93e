// `bullpen dead <lane> --redrive|--purge`: one request to the API, which works through the dead
// letters in batches. A call the API ended between two batches (api_overloaded, api_stopping) says
// what it did, and touched nothing after: it is sent again for the rest, after its Retry-After,
// and what every call did is printed as one answer. For --all it is sent with the bound on failure
// times the first call used (failedBefore), so that the jobs that call redrove, and that have died
// again since, are not redriven a second time. Dead letters left undone (held by another call,
// or taken out of the dead letters meanwhile) are summed up on stderr with exit code 5.
import { ApiError, ApiUnreachableError, OutcomeUnknownError, type ApiClient } from './api-client';
import type { Out } from './io';

/** Exit code when the API answered but some of the dead letters were not redriven or purged. */
export const EXIT_DEAD_LETTERS_LEFT = 5;

/** How many times a redrive or purge is sent again after the API ended it between batches. */
export const DEAD_ACTION_RETRIES = 30;

/** Refusals after which nothing more than the answer's `results` was done: sending it again is safe. */
const ENDED_BETWEEN_BATCHES = new Set(['api_overloaded', 'api_stopping']);

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

export async function deadAction({ action, lane, ids }: DeadActionOptions, client: ApiClient, io: Out): Promise<number> {
  const done = action === 'redrive' ? 'redriven' : 'purged';
  const flag = `dead ${lane} --${action}${ids ? '' : ' --all'}`;
  const path = `/v1/lanes/${encodeURIComponent(lane)}/dead${action === 'redrive' ? '/redrive' : ''}`;
  const results: ActionResult[] = [];
  let remaining = ids;
  /** For --all, once an answer gave it: the first call's bound, which every call sent again keeps. */
  let failedBefore: number | undefined;
  let answered = false;
  let last: ActionAnswer | undefined;
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
          lane: last?.lane ?? lane,
          [done]: count(done),
          notFound: count('not_found'),
          notDead: count('not_dead'),
          claimed: count('claimed'),
          ...(count('claimed') > 0 && last?.retryAfterSeconds !== undefined ? { retryAfterSeconds: last.retryAfterSeconds } : {}),
          results,
        },
        null,
        2,
      ),
    );
  };

  for (let retries = 0; ; retries += 1) {
    try {
      const body = remaining ? { ids: remaining } : failedBefore !== undefined ? { failedBefore } : {};
      const res = action === 'redrive' ? await client.request<unknown>('POST', path, body) : await client.request<unknown>('DELETE', path, body);
      if (!isAnswer(res.body)) throw new ApiError(`unexpected answer to ${flag}: ${JSON.stringify(res.body).slice(0, 200)}`, res.status, 1);
      last = res.body;
      results.push(...res.body.results);
      break;
    } catch (err) {
      const ended = err instanceof ApiError && ENDED_BETWEEN_BATCHES.has(err.code ?? '') && isAnswer(err.body);
      // Nothing reached an API that answered before: it is restarting, and nothing was done.
      const gone = err instanceof ApiUnreachableError && answered;
      if (ended) {
        const { results: partial, failedBefore: bound } = err.body as ActionAnswer;
        results.push(...partial);
        if (!remaining && failedBefore === undefined && Number.isSafeInteger(bound)) failedBefore = bound;
        answered = true;
        // Its results are those of the first ids sent, in order; the rest were not touched.
        if (remaining) remaining = remaining.slice(partial.length);
        if (remaining?.length === 0) break;
      }
      if (err instanceof OutcomeUnknownError) {
        if (results.length > 0) print();
        throw new OutcomeUnknownError(
          `${err.message}. An API still running goes on with it. Running the same command again is safe: ` +
            (ids ? `ids ${done} already are answered ${action === 'redrive' ? 'not_dead' : 'not_found'}` : 'it acts only on the dead letters still there') +
            ', and those a call still under way holds are answered claimed',
        );
      }
      if (!(ended || gone) || retries >= DEAD_ACTION_RETRIES) {
        if (results.length > 0) {
          print();
          io.err(`bullpen: ${flag}: ${summary().n} ${done} before this error; the others were not touched\n`);
        }
        throw err;
      }
      const seconds = ended ? ((err as ApiError).retryAfterSeconds ?? 1) : RESTART_WAIT_SECONDS;
      const why = ended ? `${(err as ApiError).code} after ${results.length} dead letters (${summary().n} ${done} so far)` : (err as ApiError).message;
      io.err(`bullpen: ${flag}: ${why}; sending it again for the rest in ${seconds} s (retry ${retries + 1} of ${DEAD_ACTION_RETRIES})\n`);
      await sleep(seconds * 1000);
    }
  }

  print();
  const { n, others, left } = summary();
  if (left === 0) return 0;
  const claimed = others.find(([status]) => status === 'claimed')?.[1] ?? 0;
  const reasons = others.map(([status, k]) => `${status}: ${k}`).join(', ');
  const advice =
    claimed > 0
      ? `claimed ones are held by another redrive or purge, or by one an API restart cut off; run the same command again in ${last?.retryAfterSeconds ?? 30} s`
      : ids
        ? 'those ids name no dead letter of yours (not_found: no job of yours; not_dead: a job that is not dead)'
        : 'another call took them out of the dead letters meanwhile; run the same command again to act on any still dead';
  io.err(`bullpen: ${flag}: ${n} ${done}, ${left} not (${reasons}): ${advice}\n`);
  return EXIT_DEAD_LETTERS_LEFT;
}
