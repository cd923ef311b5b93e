// What the API answers: response schemas (documented in /openapi.json) and the mapping from
// BullMQ jobs to them.
import type { Job } from 'bullmq';
import { z } from 'zod';
import { ERROR_CLASSES, laneSchema, parseAttemptLogRow, terminalErrorClass } from '@bullpen/core';
import { PROBLEMS, type ProblemCode } from './problem';
import type { DocMeta } from './schemas';

/** Documentation of the response schemas: ids name them in /openapi.json. */
export const responseDocs = z.registry<DocMeta>();
const doc = (description: string): DocMeta => ({ description });

const timestamp = z.iso.datetime().nullable();

export const JOB_STATES = [
  'waiting',
  'delayed',
  'prioritized',
  'active',
  'completed',
  'failed',
  'waiting-children',
  'unknown',
] as const;
export type JobStateView = (typeof JOB_STATES)[number];
const jobState = z.enum(JOB_STATES);

export const fieldErrorSchema = z
  .object({ field: z.string(), message: z.string() })
  .register(responseDocs, { id: 'FieldError' });

export const problemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.int(),
    code: z
      .enum(Object.keys(PROBLEMS) as [ProblemCode, ...ProblemCode[]])
      .register(responseDocs, doc('Stable machine-readable code: one of the catalogue, each always with the same status.')),
    detail: z.string(),
    errors: z.array(fieldErrorSchema).optional().register(responseDocs, doc('For validation: one message per offending field.')),
    jobIds: z
      .array(z.string())
      .optional()
      .register(responseDocs, doc('For redis_timeout: the jobs the request was adding, which may or may not have been enqueued.')),
    results: z
      .array(z.object({ id: z.string(), status: z.string() }))
      .optional()
      .register(
        responseDocs,
        doc('For api_overloaded, api_stopping, redis_unavailable, redis_timeout or redis_full from a redrive or purge: the dead letters its batches before that did, as in RedriveResult and PurgeResult; none after them was touched, but for the batch a redis_timeout names, which may or may not have been done.'),
      ),
    failedBefore: z
      .int()
      .optional()
      .register(
        responseDocs,
        doc('For any of those from a redrive or purge of all: the failedBefore it used; send the call again with it for the rest, and no job it redrove is redriven twice.'),
      ),
    state: z
      .enum(['completed', 'failed'])
      .optional()
      .register(responseDocs, doc('For job_finished: the state the job finished in.')),
  })
  .register(responseDocs, { id: 'Problem', description: 'RFC 9457 problem details.' });

export const jobCreatedSchema = z
  .object({ id: z.string(), lane: z.string(), name: z.string(), state: jobState, createdAt: timestamp })
  .register(responseDocs, { id: 'JobCreated' });
export type JobCreated = z.infer<typeof jobCreatedSchema>;

export const attemptSchema = z
  .object({
    attempt: z.int(),
    errorClass: z.enum(ERROR_CLASSES),
    message: z.string(),
    delayMs: z.number().nullable().register(responseDocs, doc('Delay before the next attempt; null when none followed.')),
    worker: z.string().nullable(),
    at: timestamp,
    rateLimitedRetry: z
      .int()
      .optional()
      .register(
        responseDocs,
        doc('Only on a rate-limited failure retried without using an attempt (rateLimitedConsumesAttempt: false): which of the job\'s free retries it was, from 1. Such rows keep the number of the attempt that is retried.'),
      ),
    budgetDeferral: z
      .int()
      .optional()
      .register(
        responseDocs,
        doc('Only on a start that ran no handler: the retry the lane\'s retry budget had deferred was refused again when it came due and deferred once more, without using an attempt. Which deferral of that retry it was: the failed attempt\'s own deferral is the first, so these count from 2. Such rows keep the number and error class of the attempt whose retry is deferred.'),
      ),
  })
  .register(responseDocs, { id: 'Attempt', description: 'A failed attempt, as the worker recorded it.' });
export type AttemptView = z.infer<typeof attemptSchema>;

export const jobStatusSchema = z
  .object({
    id: z.string(),
    lane: z.string(),
    name: z.string(),
    state: jobState,
    attemptsMade: z.int(),
    createdAt: timestamp,
    processedAt: timestamp,
    finishedAt: timestamp,
    failedReason: z
      .string()
      .nullable()
      .register(responseDocs, doc('Why the job failed, when its state is failed; null in any other state (attempts lists earlier failures).')),
    errorClass: z
      .enum(ERROR_CLASSES)
      .nullable()
      .register(responseDocs, doc('Error class of the failure, when the state is failed; null in any other state (attempts lists earlier failures).')),
    returnValue: z.unknown(),
    progress: z.unknown(),
    attempts: z.array(attemptSchema),
  })
  .register(responseDocs, { id: 'JobStatus' });
export type JobStatus = z.infer<typeof jobStatusSchema>;

export const jobRemovedSchema = z
  .object({ id: z.string(), lane: z.string(), state: z.literal('removed'), previousState: jobState })
  .register(responseDocs, { id: 'JobRemoved' });

export const jobCancelRequestedSchema = z
  .object({ id: z.string(), lane: z.string(), state: z.literal('active'), cancelRequested: z.literal(true) })
  .register(responseDocs, { id: 'JobCancelRequested' });

export const BULK_ITEM_STATUSES = ['created', 'replayed', 'rejected', 'invalid'] as const;
export const bulkItemResultSchema = z
  .object({
    index: z.int().register(responseDocs, doc('Position of the item in the request.')),
    status: z
      .enum(BULK_ITEM_STATUSES)
      .register(responseDocs, doc('created and replayed items were taken; rejected (lane full) and invalid items were not.')),
    id: z.string().optional().register(responseDocs, doc('The job id, for created and replayed items.')),
    code: z.string().optional().register(responseDocs, doc('queue_full, validation_failed or job_name_not_allowed.')),
    errors: z.array(fieldErrorSchema).optional(),
  })
  .register(responseDocs, { id: 'BulkItemResult' });
export type BulkItemResult = z.infer<typeof bulkItemResultSchema>;

export const bulkResultSchema = z
  .object({
    lane: z.string(),
    created: z.int(),
    replayed: z.int(),
    rejected: z.int(),
    invalid: z.int(),
    results: z.array(bulkItemResultSchema),
  })
  .register(responseDocs, { id: 'BulkResult' });
export type BulkResult = z.infer<typeof bulkResultSchema>;

export const LANE_COUNT_TYPES = ['waiting', 'active', 'delayed', 'prioritized', 'paused', 'completed', 'failed'] as const;
export const laneStatusSchema = z
  .object({
    name: z.string(),
    paused: z.boolean(),
    counts: z
      .object(Object.fromEntries(LANE_COUNT_TYPES.map((t) => [t, z.int()])) as Record<(typeof LANE_COUNT_TYPES)[number], z.ZodInt>)
      .nullable()
      .register(
        responseDocs,
        doc(
          "The lane's jobs by state, of every tenant (a lane is shared). A paused lane's jobs count as waiting; paused counts " +
            "BullMQ's legacy paused list (only a lane paused by BullMQ before 5 holds one). Only for an operator tenant (API_OPERATOR_TENANTS; " +
            'with keys of a single tenant, that tenant): null for the others, as they would tell one tenant how much the others submit and fail.',
        ),
      ),
    policy: laneSchema,
  })
  .register(responseDocs, { id: 'LaneStatus' });
export type LaneStatus = z.infer<typeof laneStatusSchema>;

export const laneListSchema = z.object({ lanes: z.array(laneStatusSchema) }).register(responseDocs, { id: 'LaneList' });

export const lanePausedSchema = z
  .object({ lane: z.string(), paused: z.boolean() })
  .register(responseDocs, { id: 'LanePaused' });

export const deadLetterSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    failedReason: z.string().nullable(),
    errorClass: z.enum(ERROR_CLASSES).nullable().register(responseDocs, doc('Error class of the last failed attempt.')),
    attemptsMade: z.int(),
    createdAt: timestamp,
    finishedAt: z.iso
      .datetime()
      .nullable()
      .register(responseDocs, doc('When the job failed for good; the list is ordered by it, newest first.')),
    attempts: z.array(attemptSchema),
  })
  .register(responseDocs, { id: 'DeadLetter', description: 'A job that ended without success, with its attempt history.' });
export type DeadLetter = z.infer<typeof deadLetterSchema>;

export const deadLetterPageSchema = z
  .object({
    items: z.array(deadLetterSchema),
    nextCursor: z
      .string()
      .nullable()
      .register(responseDocs, doc('Pass as `cursor` for the next page; null when there are no more dead letters.')),
  })
  .register(responseDocs, { id: 'DeadLetterPage' });
export type DeadLetterPage = z.infer<typeof deadLetterPageSchema>;

export const REDRIVE_STATUSES = ['redriven', 'not_found', 'not_dead', 'claimed'] as const;
export type RedriveStatus = (typeof REDRIVE_STATUSES)[number];
export const PURGE_STATUSES = ['purged', 'not_found', 'not_dead', 'claimed'] as const;
export type PurgeStatus = (typeof PURGE_STATUSES)[number];

const notFoundCount = z.int().register(responseDocs, doc("Ids that name no job of this tenant in the lane (another tenant's job included)."));
const notDeadCount = z.int().register(responseDocs, doc('Ids of jobs that exist but are not dead (waiting, active, completed, ...).'));
const claimedCount = z
  .int()
  .register(
    responseDocs,
    doc(
      'Dead letters held by another redrive or purge (or by one an API process was killed during, for at most 30 s): ' +
        'left untouched, and still dead unless that call acts on them; retry after retryAfterSeconds.',
    ),
  );
const allBound = z
  .int()
  .optional()
  .register(
    responseDocs,
    doc('Only for all: the failedBefore the call used (its start time when none was sent); the dead letters that failed after it were not looked at.'),
  );
const claimRetryAfter = z
  .int()
  .optional()
  .register(responseDocs, doc('Only when claimed is not 0: seconds after which those holds have ended, at the latest.'));

export const redriveResultSchema = z
  .object({
    lane: z.string(),
    redriven: z.int(),
    notFound: notFoundCount,
    notDead: notDeadCount,
    claimed: claimedCount,
    retryAfterSeconds: claimRetryAfter,
    failedBefore: allBound,
    results: z.array(z.object({ id: z.string(), status: z.enum(REDRIVE_STATUSES) })),
  })
  .register(responseDocs, { id: 'RedriveResult', description: 'One result per id, in request order (for "all": per dead letter found).' });
export type RedriveResult = z.infer<typeof redriveResultSchema>;

export const purgeResultSchema = z
  .object({
    lane: z.string(),
    purged: z.int(),
    notFound: notFoundCount,
    notDead: notDeadCount,
    claimed: claimedCount,
    retryAfterSeconds: claimRetryAfter,
    failedBefore: allBound,
    results: z.array(z.object({ id: z.string(), status: z.enum(PURGE_STATUSES) })),
  })
  .register(responseDocs, { id: 'PurgeResult', description: 'One result per id, in request order (for "all": per dead letter found).' });
export type PurgeResult = z.infer<typeof purgeResultSchema>;

function iso(ms: number | undefined | null): string | null {
  return typeof ms === 'number' && Number.isFinite(ms) && ms > 0 ? new Date(ms).toISOString() : null;
}

export function jobCreatedView(job: Job, lane: string, state: JobStateView): JobCreated {
  return { id: String(job.id), lane, name: job.name, state, createdAt: iso(job.timestamp) };
}

/** Attempt history from the job's log rows (core's attempt-log format), oldest first; other log lines are skipped. */
export function parseAttempts(rows: readonly string[]): AttemptView[] {
  const attempts: AttemptView[] = [];
  for (const line of rows) {
    const row = parseAttemptLogRow(line);
    if (!row) continue;
    attempts.push({
      attempt: row.attempt,
      errorClass: row.errorClass,
      message: row.message,
      delayMs: row.delayMs,
      worker: row.worker || null,
      at: iso(row.ts),
      ...(row.rateLimitedRetry !== undefined ? { rateLimitedRetry: row.rateLimitedRetry } : {}),
      ...(row.budgetDeferral !== undefined ? { budgetDeferral: row.budgetDeferral } : {}),
    });
  }
  return attempts;
}

export function jobStatusView(job: Job, lane: string, state: JobStateView, logRows: readonly string[]): JobStatus {
  const attempts = parseAttempts(logRows);
  return {
    id: String(job.id),
    lane,
    name: job.name,
    state,
    attemptsMade: job.attemptsMade ?? 0,
    createdAt: iso(job.timestamp),
    processedAt: iso(job.processedOn),
    finishedAt: iso(job.finishedOn),
    // BullMQ keeps the reason of a failed attempt on the job after it is retried, redriven or
    // completed: only a failed job's is its outcome; earlier failures are in `attempts`.
    failedReason: state === 'failed' ? job.failedReason || null : null,
    errorClass: state === 'failed' ? (terminalErrorClass(job.failedReason, attempts.at(-1)?.errorClass) ?? null) : null,
    returnValue: job.returnvalue ?? null,
    progress: job.progress ?? 0,
    attempts,
  };
}

/** A dead letter as its tenant sees it; `logRows` are the job's log lines, oldest first. */
export function deadLetterView(job: Job, logRows: readonly string[]): DeadLetter {
  const attempts = parseAttempts(logRows);
  return {
    id: String(job.id),
    name: job.name,
    failedReason: job.failedReason || null,
    errorClass: terminalErrorClass(job.failedReason, attempts.at(-1)?.errorClass) ?? null,
    attemptsMade: job.attemptsMade ?? 0,
    createdAt: iso(job.timestamp),
    finishedAt: iso(job.finishedOn),
    attempts,
  };
}
