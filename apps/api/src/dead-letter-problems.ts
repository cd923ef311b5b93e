// What a redrive or purge of many dead letters answers when it ends early: the API had no room for
// the next batch in time, is stopping, or Redis failed it. Each says what the batches before did,
// what after them may have been done, and how to send the call again for the rest: for all, with
// the bound on failure times it used, so that a job it redrove that has died again since is not
// redriven twice.
import { OVERLOADED_RETRY_AFTER_SECONDS } from './jobs-in-flight';
import { ProblemError, STOPPING_RETRY_AFTER_SECONDS, redisProblemOf, type ActionResult } from './problem';
import { RedisOutcomeUnknownError } from './redis-guard';

/** How to send a call ended early again for the rest: for all, with the bound it used. */
function sendAgain(failedBefore: number | undefined): string {
  return failedBefore === undefined ? '' : ` with failedBefore ${failedBefore}`;
}

/** No room came in time for a batch: says what the batches before it did, and that nothing after was touched. */
export function overloaded(action: 'redrive' | 'purge', limit: number, results: readonly ActionResult<string>[], failedBefore: number | undefined): ProblemError {
  const done = action === 'redrive' ? 'redriven' : 'purged';
  const before =
    results.length === 0
      ? `No dead letter was ${done}; retry shortly${sendAgain(failedBefore)}.`
      : `Only the ${results.length} dead letters listed in results were looked at (${results.filter((r) => r.status === done).length} ${done}); ` +
        `the others were not touched: retry shortly${sendAgain(failedBefore)} to ${action} them.`;
  return new ProblemError('api_overloaded', `The API has ${limit} jobs on their way to Redis and no room for this ${action} in time. ${before}`, {
    headers: { 'Retry-After': String(OVERLOADED_RETRY_AFTER_SECONDS) },
    results: [...results],
    ...(failedBefore !== undefined ? { failedBefore } : {}),
  });
}

/** The API is stopping: says what the batches before now did, and that nothing after was touched. */
export function stopped(action: 'redrive' | 'purge', results: readonly ActionResult<string>[], failedBefore: number | undefined): ProblemError {
  const done = action === 'redrive' ? 'redriven' : 'purged';
  const before =
    results.length === 0
      ? `No dead letter was ${done}.`
      : `The ${results.length} dead letters listed in results were looked at (${results.filter((r) => r.status === done).length} ${done}); ` +
        'the others were not touched.';
  return new ProblemError('api_stopping', `The API is stopping and ended this ${action} between two batches. ${before} Send it again${sendAgain(failedBefore)} to ${action} the rest.`, {
    headers: { 'Retry-After': String(STOPPING_RETRY_AFTER_SECONDS) },
    results: [...results],
    ...(failedBefore !== undefined ? { failedBefore } : {}),
  });
}


/**
 * Redis failed the call partway (down, no answer in time, a refusal): answered with the code that
 * failure has on its own, and with what the batches before did and, for all, the bound to send it
 * again with. `pending`: the dead letters of the batch whose writes were under way, which may or
 * may not have been done (then redis_timeout, whether Redis did not answer them or refused one);
 * 0 when Redis failed a read or before a batch, when nothing after `results` was touched. Any
 * other error is returned as it is.
 */
export function redisFailed(
  action: 'redrive' | 'purge',
  err: unknown,
  pending: number,
  results: readonly ActionResult<string>[],
  failedBefore: number | undefined,
): unknown {
  const problem = redisProblemOf(err);
  if (!problem) return err;
  const done = action === 'redrive' ? 'redriven' : 'purged';
  const unanswered = pending > 0 && err instanceof RedisOutcomeUnknownError;
  const failure =
    pending === 0
      ? `${problem.detail}.`
      : unanswered
        ? `Redis did not answer: the ${pending} dead letters of the batch under way may or may not have been ${done}.`
        : `Redis failed a command of the batch under way (${problem.detail}): its ${pending} dead letters may or may not have been ${done}.`;
  const untouched = pending === 0 ? 'the others were not touched' : 'none after that batch was touched';
  const before =
    results.length === 0
      ? pending === 0
        ? `No dead letter was ${done}.`
        : `None was ${done} before that batch; ${untouched}.`
      : `The ${results.length} dead letters listed in results were looked at before (${results.filter((r) => r.status === done).length} ${done}); ${untouched}.`;
  const again =
    failedBefore !== undefined
      ? `Send it again with failedBefore ${failedBefore} to ${action} the rest` +
        (action === 'redrive' ? ': a job this call redrove that has died again since failed after that bound, and is not redriven twice.' : '.')
      : pending === 0
        ? `Send the ids after those listed in results again to ${action} them.`
        : `Look at the ${pending} ids after those listed in results before sending them again; the ids after those were not touched.`;
  // A batch cut off partway, whether Redis did not answer or refused one of its writes, may be
  // partly done: its code says the outcome is unknown, so that no client sends those ids again
  // as though they were untouched.
  return new ProblemError(pending > 0 ? 'redis_timeout' : problem.code, `${failure} ${before} ${again}`, {
    ...(problem.options.headers ? { headers: problem.options.headers } : {}),
    results: [...results],
    ...(failedBefore !== undefined ? { failedBefore } : {}),
  });
}
