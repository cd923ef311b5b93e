// What a redrive or purge of many dead letters answers when it ends between two batches: the API
// had no room for the next batch in time, or is stopping. Each says what the batches before did,
// that nothing after was touched, and how to send the call again for the rest.
import { OVERLOADED_RETRY_AFTER_SECONDS } from './jobs-in-flight';
import { ProblemError, STOPPING_RETRY_AFTER_SECONDS, type ActionResult } from './problem';

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

