// Every error the API answers is an RFC 9457 problem document with a stable `code`.
import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import {
  UnavailableError,
  isOutOfMemoryReply,
  transientRefusalOf,
  type Logger,
  type RedisConnectionWatch,
  type TransientRefusal,
} from '@bullpen/core';
import { RedisOutcomeUnknownError } from './redis-guard';
import { NotReplicatedError } from './replica-wait';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';

/** One message per offending field; `field` is a path such as `body.priority` or `body.jobs[3].name`. */
export interface FieldError {
  field: string;
  message: string;
}

export interface Problem {
  type: string;
  title: string;
  status: number;
  code: string;
  detail: string;
  errors?: FieldError[];
  /** With redis_timeout: the ids of the jobs the request was adding, whose fate is unknown. */
  jobIds?: string[];
  /**
   * With api_overloaded, api_stopping, redis_unavailable, redis_timeout or redis_full from a redrive
   * or purge: what its batches before that did.
   */
  results?: ActionResult<string>[];
  /**
   * With any of those from a redrive or purge of all: the bound on failure times the call used, to
   * send again with it for the rest.
   */
  failedBefore?: number;
  /** With job_finished: the state the job finished in. */
  state?: 'completed' | 'failed';
}

/** What a redrive or purge did with one dead letter. */
export interface ActionResult<S extends string> {
  id: string;
  status: S;
}

/** Stable codes, their HTTP status and title. */
export const PROBLEMS = {
  unauthorized: { status: 401, title: 'Unauthorized' },
  lane_forbidden: { status: 403, title: 'Lane not allowed for this key' },
  operator_only: { status: 403, title: 'Only an operator tenant may do this' },
  cross_site_request: { status: 403, title: 'Cross-site request refused' },
  lane_not_found: { status: 404, title: 'Lane not found' },
  job_not_found: { status: 404, title: 'Job not found' },
  route_not_found: { status: 404, title: 'Route not found' },
  method_not_allowed: { status: 405, title: 'Method not allowed' },
  job_finished: { status: 409, title: 'Job already finished' },
  bad_request: { status: 400, title: 'Bad request' },
  malformed_json: { status: 400, title: 'Malformed JSON' },
  validation_failed: { status: 400, title: 'Validation failed' },
  job_name_not_allowed: { status: 400, title: 'Job name not allowed in this lane' },
  payload_too_large: { status: 413, title: 'Payload too large' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type' },
  queue_full: { status: 429, title: 'Lane is full' },
  redis_unavailable: { status: 503, title: 'Redis unavailable' },
  redis_timeout: { status: 503, title: 'Redis did not answer; the outcome is unknown' },
  api_overloaded: { status: 503, title: 'Too many jobs on their way to Redis; nothing more was sent' },
  api_stopping: { status: 503, title: 'The API is stopping' },
  redis_full: { status: 503, title: 'Redis is (nearly) out of memory' },
  internal: { status: 500, title: 'Internal error' },
} as const;
export type ProblemCode = keyof typeof PROBLEMS;

export function problemType(code: string): string {
  return `urn:bullpen:problem:${code}`;
}

/** Thrown by handlers and middleware; the error handler turns it into the response. */
export class ProblemError extends Error {
  override readonly name = 'ProblemError';
  readonly status: number;
  constructor(
    readonly code: ProblemCode,
    readonly detail: string,
    readonly options: {
      errors?: FieldError[];
      headers?: Record<string, string>;
      jobIds?: string[];
      results?: ActionResult<string>[];
      failedBefore?: number;
      state?: 'completed' | 'failed';
    } = {},
  ) {
    super(detail);
    this.status = PROBLEMS[code].status;
  }

  toProblem(): Problem {
    const problem: Problem = {
      type: problemType(this.code),
      title: PROBLEMS[this.code].title,
      status: this.status,
      code: this.code,
      detail: this.detail,
    };
    if (this.options.errors) problem.errors = this.options.errors;
    if (this.options.jobIds) problem.jobIds = this.options.jobIds;
    if (this.options.results) problem.results = this.options.results;
    if (this.options.failedBefore !== undefined) problem.failedBefore = this.options.failedBefore;
    if (this.options.state) problem.state = this.options.state;
    return problem;
  }
}

export function sendProblem(res: Response, error: ProblemError): void {
  for (const [name, value] of Object.entries(error.options.headers ?? {})) res.setHeader(name, value);
  res.status(error.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(error.toProblem()));
}

/** Seconds a client should wait after api_stopping: about what an API process takes to restart. */
export const STOPPING_RETRY_AFTER_SECONDS = 2;

/** Seconds a client should wait before retrying after a 503 from an outage. */
export const UNAVAILABLE_RETRY_AFTER_SECONDS = 1;

export function unavailableProblem(detail = 'Redis is unavailable; retry shortly'): ProblemError {
  return new ProblemError('redis_unavailable', detail, {
    headers: { 'Retry-After': String(UNAVAILABLE_RETRY_AFTER_SECONDS) },
  });
}

/** Seconds a client should wait after redis_full: room comes back as workers finish jobs. */
export const REDIS_FULL_RETRY_AFTER_SECONDS = 5;

/** Redis is out of memory, or past the share of it the API leaves to queued jobs. */
export function redisFullProblem(detail: string): ProblemError {
  return new ProblemError('redis_full', detail, { headers: { 'Retry-After': String(REDIS_FULL_RETRY_AFTER_SECONDS) } });
}

/**
 * A write was sent and not answered (too slow, or the connection dropped before the answer): it
 * may have been applied, so the answer must not say nothing was enqueued. It names the jobs so
 * that the client can look them up, or retry with the same idempotency keys, which cannot create
 * a second job.
 */
export function outcomeUnknownProblem(lane: string, jobIds: readonly string[], cause?: unknown): ProblemError {
  const which = jobIds.length === 1 ? `job ${jobIds[0]}` : `${jobIds.length} jobs (listed in jobIds)`;
  // Written on the primary, but not on as many replicas as configured: a failover may lose it.
  const detail =
    cause instanceof NotReplicatedError
      ? `Redis's primary took ${which} in lane ${lane}, but only ${cause.acknowledged} of ${cause.replicas} replicas ` +
        `confirmed it within ${cause.timeoutMs} ms (API_REDIS_WAIT_REPLICAS): a failover now could lose it. ` +
        'GET the job to find out, or retry with the same idempotencyKey.'
      : `Redis did not answer: ${which} may or may not have been enqueued in lane ${lane}. ` +
        'GET the job to find out, or retry with the same idempotencyKey.';
  return new ProblemError('redis_timeout', detail, {
    headers: { 'Retry-After': String(UNAVAILABLE_RETRY_AFTER_SECONDS) },
    jobIds: [...jobIds],
  });
}

/**
 * A cancel sent but not answered may have been applied: the answer says so instead of the
 * outage's "retry shortly", which would imply that nothing was done. (A redrive or purge says it
 * with what its batches did: dead-letter-problems.ts.)
 */
export function writeOutcomeUnknown(err: unknown, what: string): unknown {
  if (!(err instanceof RedisOutcomeUnknownError)) return err;
  return new ProblemError('redis_timeout', `Redis did not answer: ${what} may or may not have been done. Look at the job before retrying.`, {
    headers: { 'Retry-After': String(UNAVAILABLE_RETRY_AFTER_SECONDS) },
  });
}

/** What a 503 says of each of Redis's transient refusals. */
const TRANSIENT_REFUSAL_DETAILS: Record<TransientRefusal, string> = {
  // The connection is moving to the new primary (reconnectOnError in core's redis.ts).
  READONLY: 'Redis is failing over (the server refused the command as a replica)',
  BUSY: 'Redis is busy running a long script and refused the command',
  LOADING: 'Redis is loading its data and refused the command',
  MASTERDOWN: 'Redis is a replica cut off from its primary and refused the command',
};

/** The error `type` body.ts gives a request body that is not valid UTF-8. */
export const INVALID_UTF8 = 'entity.utf8.invalid';
/** The error `type` body.ts gives an empty request body, which body-parser would read as `{}`. */
export const EMPTY_BODY = 'entity.empty';

/** A route that reads a JSON body got none, or an empty one. */
export function bodyRequiredProblem(): ProblemError {
  return new ProblemError('validation_failed', 'A JSON request body is required', { errors: [{ field: 'body', message: 'required' }] });
}

/** The `type` field body-parser sets on its errors: a stable code, unlike the message. */
function bodyParserType(err: unknown): string | undefined {
  const type = typeof err === 'object' && err !== null ? (err as { type?: unknown }).type : undefined;
  return typeof type === 'string' ? type : undefined;
}

/**
 * What a 503 says of a Redis outage, a call Redis did not answer, or a command it refused for want
 * of memory or for a while; undefined for any other error.
 */
export function redisProblemOf(err: unknown): ProblemError | undefined {
  if (err instanceof UnavailableError) return unavailableProblem(err.message);
  // Redis refuses a write at maxmemory before it changes anything (a script at its first write).
  if (isOutOfMemoryReply(err)) return redisFullProblem('Redis is out of memory (maxmemory) and refused the write; retry later');
  // Refused before running, for a while (a failover, a long script, loading): nothing was done.
  const refusal = transientRefusalOf(err);
  if (refusal) return unavailableProblem(`${TRANSIENT_REFUSAL_DETAILS[refusal]}; nothing was written, retry shortly`);
  return undefined;
}

/** Maps anything thrown to a problem; undefined means an unexpected failure (a 500). */
export function toProblemError(err: unknown, bodyLimitBytes: number): ProblemError | undefined {
  if (err instanceof ProblemError) return err;
  const redis = redisProblemOf(err);
  if (redis) return redis;
  switch (bodyParserType(err)) {
    case 'entity.parse.failed':
      return new ProblemError('malformed_json', 'The request body is not valid JSON');
    case INVALID_UTF8:
      return new ProblemError('malformed_json', 'The request body is not valid UTF-8');
    case EMPTY_BODY:
      return bodyRequiredProblem();
    case 'entity.too.large':
      return new ProblemError('payload_too_large', `The request body exceeds ${bodyLimitBytes} bytes`);
    case 'encoding.unsupported':
      return new ProblemError('unsupported_media_type', 'Unsupported content encoding');
    case 'charset.unsupported':
      return new ProblemError('unsupported_media_type', 'Unsupported charset; send UTF-8 JSON');
    case 'request.aborted':
    case 'request.size.invalid':
      return new ProblemError('malformed_json', 'The request body ended early or had the wrong length');
    default:
      break;
  }
  // A gzip, deflate or br body whose bytes do not decompress: zlib's error, made a 400 by body-parser.
  const zlibCode = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  if (typeof zlibCode === 'string' && zlibCode.startsWith('Z_')) {
    return new ProblemError('bad_request', `The request body does not decompress as its Content-Encoding says (${zlibCode})`);
  }
  // Express itself flags client errors (a path that does not decode, say) with a 4xx status.
  const status = typeof err === 'object' && err !== null ? (err as { status?: unknown }).status : undefined;
  if (typeof status === 'number' && status >= 400 && status < 500) {
    return new ProblemError('bad_request', 'The request could not be understood');
  }
  return undefined;
}

export function notFoundHandler(): RequestHandler {
  return (req, _res, next) => {
    next(new ProblemError('route_not_found', `No route for ${req.method} ${req.path}`));
  };
}

/**
 * For a path that exists, a method it does not support: 405 method_not_allowed with the Allow
 * header RFC 9110 requires. OPTIONS asks for that list: 204 with Allow (no CORS: the API serves
 * no browsers). `allowed` are the methods the path's routes handle; OPTIONS is added.
 */
export function methodNotAllowedHandler(allowed: readonly string[]): RequestHandler {
  const allow = [...new Set([...allowed, 'OPTIONS'])].join(', ');
  return (req, res, next) => {
    if (req.method === 'OPTIONS') {
      res.setHeader('Allow', allow);
      res.status(204).end();
      return;
    }
    next(new ProblemError('method_not_allowed', `${req.method} is not allowed on ${req.path}; allowed: ${allow}`, { headers: { Allow: allow } }));
  };
}

/** @param access logs a refusal of bullpen's Redis credentials or permissions, and explains it */
export function errorHandler(logger: Logger, bodyLimitBytes: number, access?: RedisConnectionWatch): ErrorRequestHandler {
  return (err, req, res, next) => {
    if (res.headersSent) {
      next(err);
      return;
    }
    // Not the caller's fault nor a bug, and not over in a moment: the operator must grant it.
    const refusal = access?.note(err);
    const problem = refusal ? unavailableProblem(`Redis refused the command: ${refusal}`) : toProblemError(err, bodyLimitBytes);
    if (problem) {
      // Client errors and outages are expected traffic: keep them out of the info log.
      logger.debug('request failed', { method: req.method, path: req.path, status: problem.status, code: problem.code });
      sendProblem(res, problem);
      return;
    }
    logger.error('request failed unexpectedly', {
      method: req.method,
      path: req.path,
      error: err instanceof Error ? err.stack ?? err.message : String(err),
    });
    sendProblem(res, new ProblemError('internal', 'An unexpected error occurred; it has been logged'));
  };
}
