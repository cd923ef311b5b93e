// Error classes shared by the apps and their classification into a small, bounded set.
import { inspect } from 'node:util';

/** Bounded error classes: fit for a metric label. */
export const ERROR_CLASSES = [
  'timeout',
  'network',
  'http_5xx',
  'http_4xx',
  'rate_limited',
  'validation',
  'unknown_handler',
  'deadline_exceeded',
  'cancelled',
  'stalled',
  /** An isolated lane's handler thread could not start (its handlers failed to load, or hung). */
  'thread_start',
  'handler',
  'unknown',
] as const;
export type ErrorClass = (typeof ERROR_CLASSES)[number];

/**
 * The failedReason BullMQ gives a job it fails for stalling more often than the lane's maxStalls.
 * BullMQ fails it before any processor runs, so no attempt row names the class: readers of a
 * failed job (the exporter, the API's views) know it by this reason.
 */
export const STALLED_OUT_REASON = 'job stalled more than allowable limit';

/** The class of a terminal failure: `stalled` for a job BullMQ failed for stalling, else the
 * class of its last attempt row. */
export function terminalErrorClass(failedReason: string | null | undefined, lastAttemptClass: ErrorClass | undefined): ErrorClass | undefined {
  return failedReason === STALLED_OUT_REASON ? 'stalled' : lastAttemptClass;
}

export abstract class BullpenError extends Error {
  abstract readonly code: string;
  /** Whether another attempt may succeed. */
  abstract readonly retryable: boolean;
  /** The bounded class recorded for metrics and attempt history. */
  abstract readonly errorClass: ErrorClass;
}

/** Never retried: the job fails at once (maps to BullMQ's UnrecoverableError). */
export class PermanentError extends BullpenError {
  override readonly name = 'PermanentError';
  readonly code = 'permanent';
  readonly retryable = false;
  readonly errorClass: ErrorClass;
  constructor(message: string, errorClass: ErrorClass = 'handler', options?: { cause?: unknown }) {
    super(message, options);
    this.errorClass = errorClass;
  }
}

export class RetryableError extends BullpenError {
  override readonly name = 'RetryableError';
  readonly code = 'retryable';
  readonly retryable = true;
  readonly errorClass: ErrorClass;
  constructor(message: string, errorClass: ErrorClass = 'handler', options?: { cause?: unknown }) {
    super(message, options);
    this.errorClass = errorClass;
  }
}

/** The dependency asked us to slow down; the next attempt waits at least retryAfterMs. */
export class RateLimitedError extends BullpenError {
  override readonly name = 'RateLimitedError';
  readonly code = 'rate_limited';
  readonly retryable = true;
  readonly errorClass: ErrorClass = 'rate_limited';
  constructor(
    message: string,
    readonly retryAfterMs?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class TimeoutError extends BullpenError {
  override readonly name = 'TimeoutError';
  readonly code = 'timeout';
  readonly retryable = true;
  readonly errorClass: ErrorClass = 'timeout';
}

/** Raised by the producer side when Redis cannot be reached in time. */
export class UnavailableError extends Error {
  override readonly name = 'UnavailableError';
  readonly code = 'redis_unavailable';
}

/** A configuration file or variable is wrong; the message names it, the field and what was expected. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly code = 'config_invalid';
}

const LISTEN_FAILURES: Record<string, string> = {
  EADDRINUSE: 'is in use by another process',
  EACCES: 'may not be bound by this user',
  EADDRNOTAVAIL: 'is not an address of this machine',
};

/** Failures to look up HOST's name before listening: HOST's fault alone, whatever the port. */
const HOST_LOOKUP_FAILURES: Record<string, string> = {
  ENOTFOUND: 'is not a name that resolves',
  EAI_AGAIN: 'could not be resolved (the name service did not answer)',
};

/**
 * A server that cannot listen is a configuration problem: named by the variable that chose the
 * port (and HOST), or by HOST when its name does not resolve, as a ConfigError; any other error
 * is returned as it is.
 */
export function listenFailure(err: unknown, variable: string, port: number, host: string): unknown {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const hostWhy = code ? HOST_LOOKUP_FAILURES[code] : undefined;
  if (hostWhy) {
    return new ConfigError(
      `HOST: cannot listen on ${host}:${port} (${variable}): ${JSON.stringify(host)} ${hostWhy} (${code}); ` +
        'set HOST to an address or a name of this machine',
    );
  }
  const why = code ? LISTEN_FAILURES[code] : undefined;
  if (!why) return err;
  return new ConfigError(`${variable}: cannot listen on ${host}:${port}: it ${why} (${code}); set ${variable} (or HOST) to another`);
}

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
]);

export interface Classification {
  errorClass: ErrorClass;
  retryable: boolean;
  retryAfterMs?: number;
}

/** Per-lane override: errors with this code or HTTP status are classified as given. */
export interface ClassificationRule {
  code?: string;
  status?: number;
  retryable: boolean;
  errorClass?: ErrorClass;
}

function fieldOf(err: unknown, key: string): unknown {
  return typeof err === 'object' && err !== null ? (err as Record<string, unknown>)[key] : undefined;
}

/** HTTP status carried by an error itself, as common clients attach it. */
function ownStatusOf(err: unknown): number | undefined {
  const direct = fieldOf(err, 'status') ?? fieldOf(err, 'statusCode');
  if (typeof direct === 'number') return direct;
  const response = fieldOf(err, 'response');
  const nested = fieldOf(response, 'status');
  return typeof nested === 'number' ? nested : undefined;
}

function ownCodeOf(err: unknown): string | undefined {
  const code = fieldOf(err, 'code');
  return typeof code === 'string' ? code : undefined;
}

/** Causes looked through below an error that carries no code or status of its own. */
const MAX_CAUSE_DEPTH = 3;

/**
 * An error and its causes (`err.cause`, up to MAX_CAUSE_DEPTH deep, a cycle or a cause that is no
 * object ending the chain), outermost first. Clients wrap the error that says what happened:
 * Node's fetch throws `TypeError('fetch failed')` whose cause carries `code: 'ECONNREFUSED'`.
 */
function causeChain(err: unknown): unknown[] {
  const chain = [err];
  let current = err;
  for (let depth = 0; depth < MAX_CAUSE_DEPTH; depth++) {
    current = fieldOf(current, 'cause');
    if (typeof current !== 'object' || current === null || chain.includes(current)) break;
    chain.push(current);
  }
  return chain;
}

/** Every value `read` finds along a cause chain, outermost first. */
function foundAlong<T>(chain: readonly unknown[], read: (value: unknown) => T | undefined): T[] {
  const found: T[] = [];
  for (const link of chain) {
    const value = read(link);
    if (value !== undefined) found.push(value);
  }
  return found;
}

/** The error code (`ECONNREFUSED`) a thrown value carries, on itself or on one of its causes. */
export function errorCodeOf(err: unknown): string | undefined {
  return foundAlong(causeChain(err), ownCodeOf)[0];
}

/** The HTTP status a thrown value carries, on itself or on one of its causes. */
export function errorStatusOf(err: unknown): number | undefined {
  return foundAlong(causeChain(err), ownStatusOf)[0];
}

export function classifyHttpStatus(status: number): Classification {
  if (status === 429) return { errorClass: 'rate_limited', retryable: true };
  if (status === 408) return { errorClass: 'timeout', retryable: true };
  if (status >= 500) return { errorClass: 'http_5xx', retryable: true };
  return { errorClass: 'http_4xx', retryable: false };
}

/**
 * Classifies any thrown value. Typed bullpen errors speak for themselves; others are judged by
 * their `code` (network errors) or HTTP status, their own or else their causes', never by message
 * text. Rules come first.
 */
export function classifyError(err: unknown, rules: readonly ClassificationRule[] = []): Classification {
  const chain = causeChain(err);
  const codes = foundAlong(chain, ownCodeOf);
  const statuses = foundAlong(chain, ownStatusOf);
  // The error's own, else its nearest cause's.
  const code = codes[0];
  const status = statuses[0];
  // A rule matches a code or status anywhere along the causes: a typed error that wraps what
  // happened (the http handler's RetryableError around an ECONNREFUSED) has a code of its own.
  if (rules.length > 0) {
    for (const rule of rules) {
      if ((rule.code !== undefined && codes.includes(rule.code)) || (rule.status !== undefined && statuses.includes(rule.status))) {
        return { errorClass: rule.errorClass ?? 'handler', retryable: rule.retryable };
      }
    }
  }
  if (err instanceof RateLimitedError) {
    return err.retryAfterMs === undefined
      ? { errorClass: 'rate_limited', retryable: true }
      : { errorClass: 'rate_limited', retryable: true, retryAfterMs: err.retryAfterMs };
  }
  if (err instanceof BullpenError) return { errorClass: err.errorClass, retryable: err.retryable };
  if (code !== undefined && NETWORK_CODES.has(code)) return { errorClass: 'network', retryable: true };
  if (status !== undefined && status >= 400) return classifyHttpStatus(status);
  if (fieldOf(err, 'name') === 'AbortError' || fieldOf(err, 'name') === 'TimeoutError') {
    return { errorClass: 'timeout', retryable: true };
  }
  return { errorClass: 'handler', retryable: true };
}

/** Longest description kept for a thrown value that is not an Error and has no JSON form. */
const MAX_THROWN_TEXT = 2000;

/**
 * A readable one-line account of anything thrown or reported: an Error's message (its name when
 * the message is empty), a string as it is, anything else as JSON, or, for a cycle or a BigInt,
 * as Node would print it rather than as "[object Object]".
 */
export function describeThrown(value: unknown): string {
  if (value instanceof Error) return value.message || value.name;
  if (typeof value === 'string') return value;
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return inspect(value, { depth: 2, breakLength: Infinity }).slice(0, MAX_THROWN_TEXT);
  }
}
