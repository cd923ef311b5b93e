// From a validated submission to what BullMQ stores: the envelope with bullpen's metadata, the
// job options, and the deduplication id that carries the idempotency key. Pure.
import { createHash } from 'node:crypto';
import type { JobsOptions } from 'bullmq';
import { wrapJobData, type JobEnvelope, type JobMeta, type LanePolicy } from '@bullpen/core';
import type { FieldError, ProblemCode } from './problem';
import type { JobSubmission } from './schemas';
import type { JobStateView } from './views';

/**
 * BullMQ deduplication id for an idempotency key: per tenant (a key cannot reach another
 * tenant's job) and, being stored under the lane's keys, per lane.
 */
export function deduplicationId(tenant: string, idempotencyKey: string): string {
  return createHash('sha256').update(`${tenant}\0${idempotencyKey}`, 'utf8').digest('hex');
}

export interface SubmissionRejection {
  code: Extract<ProblemCode, 'validation_failed' | 'job_name_not_allowed'>;
  errors: FieldError[];
}

/** Checks that depend on the lane rather than on the schema. `base` is the item's field path. */
export function checkSubmission(input: JobSubmission, policy: LanePolicy, base: string): SubmissionRejection | undefined {
  if (policy.jobNames && !policy.jobNames.includes(input.name)) {
    return {
      code: 'job_name_not_allowed',
      errors: [{ field: `${base}.name`, message: `expected one of ${policy.jobNames.join(', ')}` }],
    };
  }
  // The deadline in effect is the job's own or, without one, the lane's: either way a job delayed
  // past it would wait out its delay only to fail with deadline_exceeded, never having run.
  if (input.delayMs !== undefined) {
    if (input.deadlineMs !== undefined && input.deadlineMs <= input.delayMs) {
      return {
        code: 'validation_failed',
        errors: [{ field: `${base}.deadlineMs`, message: 'expected more than delayMs: the job could never start' }],
      };
    }
    if (input.deadlineMs === undefined && policy.deadlineMs !== undefined && policy.deadlineMs <= input.delayMs) {
      return {
        code: 'validation_failed',
        errors: [
          {
            field: `${base}.delayMs`,
            message:
              `expected less than the lane's deadlineMs (${policy.deadlineMs}), the deadline in effect without a deadlineMs ` +
              'of its own: the job could never start',
          },
        ],
      };
    }
  }
  return undefined;
}

export interface PreparedJob {
  jobId: string;
  name: string;
  data: JobEnvelope;
  /** Per-job options; the lane's defaults (attempts, backoff) are applied by the caller. The id
   * is given to BullMQ beside them, not in them: stored in the job's opts, a 36-character id
   * would push the field past what Redis keeps in a compact hash (see laneJobOptions). */
  opts: JobsOptions;
  /** The state the job enters, known without asking Redis. */
  initialState: JobStateView;
}

export interface PrepareContext {
  tenant: string;
  policy: LanePolicy;
  jobId: string;
  nowMs: number;
}

export function prepareJob(input: JobSubmission, { tenant, policy, jobId, nowMs }: PrepareContext): PreparedJob {
  const meta: JobMeta = { v: 1, tenant };
  const deadlineMs = input.deadlineMs ?? policy.deadlineMs;
  if (deadlineMs !== undefined) meta.deadlineAt = nowMs + deadlineMs;
  if (input.timeoutMs !== undefined) meta.timeoutMs = input.timeoutMs;

  const opts: PreparedJob['opts'] = {};
  if (input.attempts !== undefined) opts.attempts = input.attempts;
  if (input.priority !== undefined) opts.priority = input.priority;
  if (input.delayMs !== undefined && input.delayMs > 0) opts.delay = input.delayMs;
  if (input.idempotencyKey !== undefined) {
    opts.deduplication = { id: deduplicationId(tenant, input.idempotencyKey), ttl: policy.idempotencyTtlMs };
  }

  const initialState: JobStateView = opts.delay ? 'delayed' : opts.priority ? 'prioritized' : 'waiting';
  return { jobId, name: input.name, data: wrapJobData(input.data, meta), opts, initialState };
}
