// Request schemas: the zod schemas that validate request bodies are the ones /openapi.json is
// generated from, so the document cannot drift from what the API accepts.
import { z } from 'zod';
import { PRIORITY_LIMIT } from 'bullmq';
import { JOB_NAME, MAX_TIMER_MS } from '@bullpen/core';
import { DEAD_CURSOR_MESSAGE } from './dead-letters';
import { nestsAtMost } from './json-depth';
import type { FieldError } from './problem';

/** Documentation of the request schemas: ids name them in /openapi.json, descriptions explain fields. */
export interface DocMeta {
  id?: string;
  description?: string;
}
export const requestDocs = z.registry<DocMeta>();
const doc = (description: string): DocMeta => ({ description });

export const MAX_BULK_JOBS = 1000;
/** BullMQ's own bound; a larger priority would be refused by BullMQ after admission. */
export const MAX_PRIORITY = PRIORITY_LIMIT;
export const MAX_DELAY_MS = 365 * 24 * 3600 * 1000;
/**
 * Arrays and objects nested in a job's data. Far past what a payload needs, and far below the few
 * thousand levels at which JSON.stringify (BullMQ's, the worker's) overflows the stack.
 */
export const MAX_DATA_DEPTH = 64;

/** One message whether the value is missing, of the wrong type or out of range. */
function integer(min: number, max?: number) {
  const expected = max === undefined ? `expected an integer of at least ${min}` : `expected an integer from ${min} to ${max}`;
  const schema = z.int({ error: expected }).min(min, { error: expected });
  return max === undefined ? schema : schema.max(max, { error: expected });
}

const jobNameMessage = 'expected a job name: a letter, then up to 127 letters, digits, _ . or -';
const idempotencyKeyMessage = 'expected a string of 1 to 200 characters';
const LONE_SURROGATE = /\p{Cs}/u;
const dataDepthMessage = `expected arrays and objects nested at most ${MAX_DATA_DEPTH} levels deep`;

export const jobSubmissionSchema = z
  .strictObject({
    name: z
      .string({ error: (issue) => (issue.input === undefined ? 'required' : jobNameMessage) })
      .regex(JOB_NAME, { error: jobNameMessage })
      .register(requestDocs, doc('Job name: selects the handler; the lane may restrict the names it accepts.')),
    data: z
      .unknown()
      .refine((data) => nestsAtMost(data, MAX_DATA_DEPTH), { error: dataDepthMessage })
      .default(() => ({}))
      .register(
        requestDocs,
        doc(
          `Any JSON value, passed to the handler as its payload; default {}. Arrays and objects may nest at most ${MAX_DATA_DEPTH} ` +
            'levels deep ({"a": [1]} is 2 levels).',
        ),
      ),
    idempotencyKey: z
      .string({ error: idempotencyKeyMessage })
      .min(1, { error: idempotencyKeyMessage })
      .max(200, { error: idempotencyKeyMessage })
      // A lone surrogate (a JSON escape such as \ud800) has no UTF-8 form: hashed, every one of
      // them would become U+FFFD, and keys that differ only there would name the same job.
      .refine((key) => !LONE_SURROGATE.test(key), { error: 'expected well-formed Unicode: a lone surrogate escape names no character' })
      .optional()
      .register(
        requestDocs,
        doc(
          "Repeating a key (per tenant and lane, within the lane's idempotencyTtlMs) returns the original job " +
            'with 200 and Idempotent-Replayed: true instead of adding another. The key names that job for the whole ' +
            'idempotencyTtlMs, also once the job was cancelled, purged or removed by retention: the repeat then answers ' +
            'its id with state unknown and createdAt null (GET answers 404), and adds nothing.',
        ),
      ),
    priority: integer(1, MAX_PRIORITY)
      .optional()
      .register(requestDocs, doc('1 is the highest priority; jobs without a priority run before prioritized ones.')),
    delayMs: integer(0, MAX_DELAY_MS)
      .optional()
      .register(
        requestDocs,
        doc("Wait this long before the job may start; default 0. Must be shorter than the deadline in effect: deadlineMs, or else the lane's."),
      ),
    attempts: integer(1, 100)
      .optional()
      .register(requestDocs, doc("Attempts including the first; default the lane's attempts.")),
    // Bounded only where a number stops being an exact integer, so that 1e20 is told so.
    deadlineMs: integer(1, Number.MAX_SAFE_INTEGER)
      .optional()
      .register(requestDocs, doc("No attempt starts later than this after submission; default the lane's deadlineMs, if any.")),
    timeoutMs: integer(1, MAX_TIMER_MS)
      .optional()
      .register(requestDocs, doc("Per-attempt timeout; default the lane's timeoutMs.")),
  })
  .register(requestDocs, { id: 'JobSubmission', description: 'A job to add to a lane.' });
export type JobSubmission = z.output<typeof jobSubmissionSchema>;

/**
 * The bulk envelope. Its items are validated one by one with jobSubmissionSchema so that a bad
 * item is rejected alone; the documented form (bulkSubmissionDocSchema) names that schema.
 */
const jobsArray = <T extends z.ZodType>(item: T) =>
  z
    .array(item, { error: `expected an array of 1 to ${MAX_BULK_JOBS} jobs` })
    .min(1, { error: `expected an array of 1 to ${MAX_BULK_JOBS} jobs` })
    .max(MAX_BULK_JOBS, { error: `expected an array of 1 to ${MAX_BULK_JOBS} jobs` });

export const bulkSubmissionSchema = z.strictObject({ jobs: jobsArray(z.unknown()) });
export const bulkSubmissionDocSchema = z
  .strictObject({ jobs: jobsArray(jobSubmissionSchema) })
  .register(requestDocs, { id: 'BulkSubmission', description: `Up to ${MAX_BULK_JOBS} jobs for one lane.` });

export const DEAD_PAGE_DEFAULT = 50;
export const DEAD_PAGE_MAX = 500;
export const MAX_DEAD_IDS = 1000;
/** Longest job id accepted in a list of ids; BullMQ ids are far shorter. */
export const MAX_JOB_ID_CHARS = 256;
const CURSOR_MAX_CHARS = 1024;

const limitMessage = `expected an integer from 1 to ${DEAD_PAGE_MAX}`;
const cursorMessage = DEAD_CURSOR_MESSAGE;

/** Query of GET /v1/lanes/:lane/dead. Query values arrive as strings; limit is read as decimal
 * digits only (Number() would also take `0x10`, `1e2` and ` 5`). */
export const deadLetterQuerySchema = z.strictObject({
  limit: z
    .preprocess(
      (v) => (typeof v === 'string' && /^[0-9]{1,16}$/.test(v) ? Number(v) : v),
      z
        .number({ error: limitMessage })
        .int({ error: limitMessage })
        .min(1, { error: limitMessage })
        .max(DEAD_PAGE_MAX, { error: limitMessage })
        .default(DEAD_PAGE_DEFAULT),
    )
    .register(requestDocs, doc(`Dead letters per page, 1 to ${DEAD_PAGE_MAX}; default ${DEAD_PAGE_DEFAULT}.`)),
  cursor: z
    .string({ error: cursorMessage })
    .max(CURSOR_MAX_CHARS, { error: cursorMessage })
    // Only its form here: what it holds is sealed, and opened for the caller's tenant and lane in list().
    .regex(/^[A-Za-z0-9_-]+$/, { error: cursorMessage })
    .optional()
    .register(requestDocs, doc("The previous page's nextCursor (opaque); omit for the newest dead letters.")),
});
export type DeadLetterQuery = z.output<typeof deadLetterQuerySchema>;

const idsMessage = `expected an array of 1 to ${MAX_DEAD_IDS} job ids`;
const failedBeforeMessage = 'expected a time in ms since the epoch: an integer of at least 0';
const idMessage = `expected a job id: a string of 1 to ${MAX_JOB_ID_CHARS} characters`;

/** Body of redrive and purge: `{}` selects all of the caller's dead letters in the lane. */
export const deadLetterSelectionSchema = z
  .strictObject({
    ids: z
      .array(z.string({ error: idMessage }).min(1, { error: idMessage }).max(MAX_JOB_ID_CHARS, { error: idMessage }), {
        error: idsMessage,
      })
      .min(1, { error: idsMessage })
      .max(MAX_DEAD_IDS, { error: idsMessage })
      .superRefine((ids, ctx) => {
        // The same id twice would race against itself and answer twice; it is almost surely a mistake.
        const first = new Map<string, number>();
        ids.forEach((id, index) => {
          const seen = first.get(id);
          if (seen === undefined) first.set(id, index);
          else ctx.addIssue({ code: 'custom', path: [index], message: `duplicate of ids[${seen}]` });
        });
      })
      .optional()
      .register(requestDocs, doc(`Up to ${MAX_DEAD_IDS} job ids, each at most once; omit for all of this tenant's dead letters in the lane.`)),
    failedBefore: z
      .int({ error: failedBeforeMessage })
      .min(0, { error: failedBeforeMessage })
      .optional()
      .register(
        requestDocs,
        doc(
          'Only without ids: all of the dead letters that failed at or before this time (ms since the epoch). Every answer to a ' +
            'call for all gives the bound it used (its start time when none was sent): a call ended early is sent again with it, ' +
            'so that the jobs it redrove that died again since are not redriven a second time.',
        ),
      ),
  })
  .superRefine((selection, ctx) => {
    if (selection.ids !== undefined && selection.failedBefore !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['failedBefore'], message: 'expected no failedBefore with ids: it bounds the selection of all' });
    }
  })
  .register(requestDocs, {
    id: 'DeadLetterSelection',
    description:
      "Which dead letters: `{}` for all of this tenant's dead letters in the lane, `{\"failedBefore\": <ms>}` for all of those " +
      'that failed at or before then, or `{"ids": [...]}`.',
  });
export type DeadLetterSelection = z.output<typeof deadLetterSelectionSchema>;

function formatPath(base: string, path: readonly PropertyKey[]): string {
  let out = base;
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (typeof segment === 'string' && /^[A-Za-z_$][\w$]*$/.test(segment)) out += `.${segment}`;
    else out += `[${JSON.stringify(String(segment))}]`;
  }
  return out;
}

/** One message per offending field, in the order zod found them. */
export function fieldErrors(error: z.ZodError, base: string): FieldError[] {
  const byField = new Map<string, string>();
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const field = formatPath(base, [...issue.path, key]);
        if (!byField.has(field)) byField.set(field, 'unknown field');
      }
      continue;
    }
    const field = formatPath(base, issue.path);
    if (!byField.has(field)) byField.set(field, issue.message);
  }
  return [...byField].map(([field, message]) => ({ field, message }));
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; errors: FieldError[] };

export function parseWith<S extends z.ZodType>(schema: S, input: unknown, base: string): Parsed<z.output<S>> {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { ok: false, errors: [{ field: base, message: 'expected a JSON object' }] };
  }
  const result = schema.safeParse(input);
  return result.success ? { ok: true, value: result.data } : { ok: false, errors: fieldErrors(result.error, base) };
}
