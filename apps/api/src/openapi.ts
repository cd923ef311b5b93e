// The OpenAPI 3.1 document, generated from the zod schemas the API validates requests with
// (schemas.ts) and describes its answers with (views.ts).
import { z } from 'zod';
import type { BullpenConfig } from '@bullpen/core';
import { DEAD_PAGE_MAX, deadLetterQuerySchema, MAX_BULK_JOBS, MAX_DEAD_IDS, requestDocs } from './schemas';
import { responseDocs } from './views';

type JsonObject = Record<string, unknown>;

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });
const json = (schemaId: string) => ({ 'application/json': { schema: ref(schemaId) } });
const problem = (description: string, headers?: JsonObject) => ({
  description,
  content: { 'application/problem+json': { schema: ref('Problem') } },
  ...(headers ? { headers } : {}),
});
const retryAfter = { 'Retry-After': { description: 'Seconds to wait before retrying.', schema: { type: 'integer' } } };

const operatorOnly = problem(
  'lane_forbidden: the key may not use this lane. operator_only: the tenant may not pause or resume lanes (API_OPERATOR_TENANTS).',
);

const common = {
  '401': problem('unauthorized: missing or wrong API key (WWW-Authenticate: Bearer).'),
  '403': problem('lane_forbidden: the key may not use this lane.'),
  '404': problem('lane_not_found, or job_not_found (also for another tenant\'s job).'),
  '503': problem(
    'redis_unavailable: Redis is down, or refused the command for a while without running it (a failover, a long ' +
      'script, loading); nothing was written. Also when Redis refuses bullpen\'s credentials or an ACL permission: ' +
      'the detail says which, until an operator grants it. redis_timeout: an add was sent but not answered ' +
      '(over 1 s, or the connection dropped), or, with API_REDIS_WAIT_REPLICAS, not confirmed by that many replicas ' +
      'in time: the jobs named in jobIds may or may not exist; GET them or retry with the same idempotencyKey. ' +
      'api_overloaded (submissions, dead-letter redrives and purges): the API had API_MAX_INFLIGHT_JOBS jobs on their ' +
      'way to Redis and no room came in time; nothing (more) was sent: a redrive or purge cut short lists what its ' +
      'batches before did in results, and touched nothing after. api_stopping (dead-letter redrives and purges): the ' +
      'API process is stopping and ended the call between two batches, with the same results; send it again. A redrive or ' +
      'purge that Redis fails partway answers redis_unavailable (or redis_full) with the same results, nothing after them ' +
      'touched, or redis_timeout when Redis did not answer or refused the writes of a batch, which may or may not have been done. All of ' +
      'these, for a call of all, give the failedBefore it used: sent again with it, the call does the rest and redrives no job twice. redis_full (submissions and other writes): Redis ' +
      'is past API_REDIS_MEMORY_LIMIT of its maxmemory, or refused the write at maxmemory; nothing was changed.',
    retryAfter,
  ),
};
const bodyErrors = {
  '400': problem('malformed_json, validation_failed (one message per field) or job_name_not_allowed.'),
  '413': problem('payload_too_large: the body exceeds API_BODY_LIMIT_BYTES.'),
  '415': problem('unsupported_media_type: send Content-Type: application/json.'),
};

const selectionErrors = {
  ...bodyErrors,
  '400': problem('malformed_json, or validation_failed naming each bad field (e.g. body.ids[3]).'),
};

/** Component schemas of a registry; `io` is "input" for requests (defaults make fields optional). */
function componentSchemas(registry: typeof requestDocs, io: 'input' | 'output'): Record<string, JsonObject> {
  const { schemas } = z.toJSONSchema(registry, {
    target: 'draft-2020-12',
    io,
    metadata: registry,
    uri: (id) => `#/components/schemas/${id}`,
    // A construct JSON Schema cannot express (say, a transform in a lane policy) becomes "any":
    // the document degrades instead of the endpoint failing.
    unrepresentable: 'any',
  });
  const out: Record<string, JsonObject> = {};
  for (const [id, schema] of Object.entries(schemas)) {
    // Components are embedded in the document: their own $schema/$id would only confuse tools.
    const { $schema: _schema, $id: _id, ...rest } = schema as JsonObject;
    out[id] = rest;
  }
  return out;
}

/** Query parameters from the zod schema that validates the query, so the two cannot drift. */
function queryParameters(schema: z.ZodObject): JsonObject[] {
  const json = z.toJSONSchema(schema, { target: 'draft-2020-12', io: 'input', metadata: requestDocs, unrepresentable: 'any' }) as {
    properties?: Record<string, JsonObject>;
    required?: string[];
  };
  return Object.entries(json.properties ?? {}).map(([name, property]) => {
    const { description, ...rest } = property;
    return {
      name,
      in: 'query',
      required: json.required?.includes(name) ?? false,
      ...(typeof description === 'string' ? { description } : {}),
      schema: rest,
    };
  });
}

export function buildOpenApiDocument(config: BullpenConfig): JsonObject {
  const laneParam = {
    name: 'lane',
    in: 'path',
    required: true,
    schema: { type: 'string', enum: [...config.laneNames] },
  };
  const idParam = { name: 'id', in: 'path', required: true, schema: { type: 'string' } };
  const noAuth: unknown[] = [];

  return {
    openapi: '3.1.0',
    info: {
      title: 'bullpen producer API',
      version: '1',
      description:
        'Submit jobs to lanes (BullMQ queues), read and cancel them, inspect and pause lanes, ' +
        'list, redrive and purge dead letters. ' +
        'Every error is application/problem+json with a stable `code`. A method that a path does not support is ' +
        'answered 405 method_not_allowed with an Allow header listing the methods it does (on /v1 paths, after ' +
        'authentication); OPTIONS on a path is answered 204 with that Allow header. A path that does not exist is ' +
        'answered 404 route_not_found.',
    },
    security: [{ bearer: [] }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An API key from API_KEYS.' } },
      schemas: { ...componentSchemas(requestDocs, 'input'), ...componentSchemas(responseDocs, 'output') },
    },
    paths: {
      '/v1/lanes/{lane}/jobs': {
        post: {
          summary: 'Submit a job',
          parameters: [laneParam],
          requestBody: { required: true, content: json('JobSubmission') },
          responses: {
            '201': { description: 'Added.', content: json('JobCreated') },
            '200': {
              description:
                'The idempotency key was seen before: the original job, nothing added. A job removed since (cancelled, ' +
                'purged or by retention) is answered with its id, state unknown and createdAt null.',
              headers: { 'Idempotent-Replayed': { schema: { type: 'string', const: 'true' } } },
              content: json('JobCreated'),
            },
            ...bodyErrors,
            ...common,
            '429': problem('queue_full: the lane holds maxQueueSize jobs not yet started.', retryAfter),
          },
        },
      },
      '/v1/lanes/{lane}/jobs/bulk': {
        post: {
          summary: `Submit up to ${MAX_BULK_JOBS} jobs`,
          description:
            'Items are validated one by one; valid items are admitted in order while the lane has room and added ' +
            'atomically (all admitted items or none; a 503 redis_timeout means either, for the jobIds it names). Each result says whether its item was taken ' +
            '(created, replayed) or not (rejected: lane full, invalid). Retry-After is set when any item was rejected. ' +
            "An item repeating an earlier item's idempotencyKey takes no room of its own: it is answered as a replay of " +
            "that item's job, or rejected with it.",
          parameters: [laneParam],
          requestBody: { required: true, content: json('BulkSubmission') },
          responses: { '200': { description: 'Per-item results.', content: json('BulkResult') }, ...bodyErrors, ...common },
        },
      },
      '/v1/lanes/{lane}/jobs/{id}': {
        get: {
          summary: 'Read a job: state, attempts, timestamps, failure and return value',
          parameters: [laneParam, idParam],
          responses: { '200': { description: 'The job.', content: json('JobStatus') }, ...common },
        },
        delete: {
          summary: 'Cancel a job',
          description:
            'A job that has not started (waiting, delayed, prioritized) is removed: 200; its idempotency key ' +
            "still names it (a repeat adds nothing) until the lane's idempotencyTtlMs runs out. " +
            'A running job cannot be removed: its worker is asked to abort it (the handler\'s AbortSignal fires): 202. ' +
            'A job that has finished is left as it is, with its result: 409 job_finished, whose state says completed or failed ' +
            '(a failed job is a dead letter: DELETE /v1/lanes/{lane}/dead removes it). The three are told apart on the ' +
            "job's state at one instant, so a job that finishes just before the cancel is never removed.",
          parameters: [laneParam, idParam],
          responses: {
            '200': { description: 'Removed.', content: json('JobRemoved') },
            '202': { description: 'Running: cancellation requested.', content: json('JobCancelRequested') },
            '409': problem('job_finished: the job has completed or failed; nothing was cancelled or removed.'),
            ...common,
          },
        },
      },
      '/v1/lanes/{lane}/dead': {
        get: {
          summary: "List the lane's dead letters (this tenant's), newest first",
          description:
            'Dead letters are the jobs in the lane\'s failed set: attempts exhausted, permanent error, ' +
            'deadline_exceeded or retry budget exhausted. They are kept per the lane\'s retention.failed ' +
            '(default 7 days or 10,000 jobs). Pages follow an opaque cursor that stays correct while new ' +
            'failures arrive. A page scans a bounded number of dead letters of all tenants, so it may hold ' +
            'fewer than `limit` items while `nextCursor` is not null: read on until `nextCursor` is null.',
          parameters: [laneParam, ...queryParameters(deadLetterQuerySchema)],
          responses: {
            '200': { description: 'A page of dead letters.', content: json('DeadLetterPage') },
            '400': problem(`validation_failed: query.limit (1 to ${DEAD_PAGE_MAX}) or query.cursor is invalid.`),
            ...common,
          },
        },
        delete: {
          summary: 'Purge dead letters: all of this tenant\'s in the lane, or the listed ids',
          description:
            `Send \`{}\` or no body at all (no Content-Type and no bytes) for every dead letter of this tenant in the ` +
            `lane (\`{"failedBefore": <ms>}\`: those that failed at or before then; the answer gives the bound used), ` +
            `or \`{"ids": [...]}\` (1 to ${MAX_DEAD_IDS}). A body sent with a Content-Type must be a JSON object: ` +
            'an empty one, `null` or another value is refused with 400 naming `body`, never read as "all". ' +
            'Purged jobs are removed with their history; their idempotency keys still name them (a repeat adds nothing) ' +
            "until the lane's idempotencyTtlMs runs out. Each id gets a result: purged, " +
            'not_found (no such job for this tenant), not_dead (the job exists but is not dead) or claimed (held by another ' +
            'redrive or purge, or by one an API process was killed during, for at most 30 s: left untouched; retry after ' +
            'retryAfterSeconds). The whole body is validated before anything is removed.',
          parameters: [laneParam],
          requestBody: { required: false, content: json('DeadLetterSelection') },
          responses: { '200': { description: 'Per-id results.', content: json('PurgeResult') }, ...selectionErrors, ...common },
        },
      },
      '/v1/lanes/{lane}/dead/redrive': {
        post: {
          summary: 'Redrive dead letters: all of this tenant\'s in the lane, or the listed ids',
          description:
            `Send \`{}\` for every dead letter of this tenant in the lane (\`{"failedBefore": <ms>}\`: those that failed at ` +
            'or before then; the answer gives the bound used, the start of the call when none was sent, to send a call ' +
            `ended early again with), or \`{"ids": [...]}\` (1 to ${MAX_DEAD_IDS}); ` +
            'a missing or empty body, `null` or another value that is not an object is refused with 400 naming `body`. ' +
            'Each redriven job goes back to the lane with fresh attempts (attemptsMade 0) and a fresh deadline ' +
            '(as long from now as it first had from its enqueue, however often it is redriven); its attempt history is kept. Admission control ' +
            '(maxQueueSize) does not apply: a redrive is an operator\'s action and is never refused with 429. ' +
            'Each id gets a result: redriven, not_found (no such job for this tenant), not_dead (not dead) or claimed ' +
            '(held by another redrive or purge, or by one an API process was killed during, for at most 30 s: left ' +
            'untouched; retry after retryAfterSeconds). The whole body is validated before anything is redriven. ' +
            'The call is one request however many dead letters it acts on, done in batches of 200.',
          parameters: [laneParam],
          requestBody: { required: true, content: json('DeadLetterSelection') },
          responses: { '200': { description: 'Per-id results.', content: json('RedriveResult') }, ...selectionErrors, ...common },
        },
      },
      '/v1/lanes': {
        get: {
          summary: "Each lane's policy, paused flag and, for an operator tenant, live counts (the lanes this key may use)",
          description:
            "A lane is shared by every tenant and its counts are of all their jobs, so only an operator tenant " +
            '(API_OPERATOR_TENANTS; with keys of a single tenant, that tenant) gets them; for the others counts is null.',
          responses: { '200': { description: 'Lanes.', content: json('LaneList') }, ...common },
        },
      },
      '/v1/lanes/{lane}/pause': {
        post: {
          summary: 'Pause a lane: workers take no new jobs from it; submissions are still accepted',
          description: 'The lane is paused for every tenant: with keys of several tenants, only those API_OPERATOR_TENANTS names may.',
          parameters: [laneParam],
          responses: { '200': { description: 'Paused.', content: json('LanePaused') }, ...common, '403': operatorOnly },
        },
      },
      '/v1/lanes/{lane}/resume': {
        post: {
          summary: 'Resume a paused lane',
          description: 'The lane is resumed for every tenant: with keys of several tenants, only those API_OPERATOR_TENANTS names may.',
          parameters: [laneParam],
          responses: { '200': { description: 'Resumed.', content: json('LanePaused') }, ...common, '403': operatorOnly },
        },
      },
      '/healthz': {
        get: { summary: 'The process is alive', security: noAuth, responses: { '200': { description: 'Alive.' } } },
      },
      '/readyz': {
        get: {
          summary: 'Redis answers PING within API_REDIS_TIMEOUT_MS (1 s by default)',
          security: noAuth,
          responses: {
            '200': { description: 'Ready. `warnings` is there when Redis may evict jobs (its maxmemory-policy is not noeviction).' },
            '503': problem('redis_unavailable.'),
          },
        },
      },
      '/openapi.json': {
        get: { summary: 'This document', security: noAuth, responses: { '200': { description: 'OpenAPI 3.1.' } } },
      },
    },
  };
}
