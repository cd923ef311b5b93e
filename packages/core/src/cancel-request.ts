// A cancellation of an active job is kept on the job (lua/request-cancel.lua) as well as announced
// on the cancel channel: the message reaches the worker running the job now; the mark reaches a
// worker that starts the job later (after the one running it died, or missed the message).
import { JOB_FIELD } from './job-fields';
import { jobKeys } from './keys';
import { scriptCommand } from './lua';
import type { RedisClient } from './redis';

const REQUEST_CANCEL = 'bullpenRequestCancel';
interface RequestCancelClient {
  [REQUEST_CANCEL](jobKey: string, field: string, at: number): Promise<number>;
}

/** Marks the job as cancelled on request; false when it no longer exists. */
export async function markCancelRequested(redis: RedisClient, prefix: string, lane: string, jobId: string, at = Date.now()): Promise<boolean> {
  const client = scriptCommand<RequestCancelClient>(redis, REQUEST_CANCEL, 'request-cancel', 1);
  return (await client[REQUEST_CANCEL](jobKeys(prefix, lane, jobId).job, JOB_FIELD.cancelRequested, at)) === 1;
}
