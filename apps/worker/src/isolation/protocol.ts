// Messages between an isolated lane's pool (main thread) and its handler threads, and how errors
// cross the boundary: structured clone keeps only plain data, so an error travels as its fields and
// is rebuilt as the same bullpen error class, which its classification depends on.
import {
  CancelledError,
  PermanentError,
  RateLimitedError,
  RetryableError,
  TimeoutError,
  ERROR_CLASSES,
  describeThrown,
  type ConsoleLevel,
  type ErrorClass,
  type LogLevel,
  type TracingConfig,
} from '@bullpen/core';
import type { JobProgress } from 'bullmq';

/** What a handler thread is started with. */
export interface ThreadData {
  /** HANDLERS_DIR, loaded by the thread as the worker process loads it. */
  handlersDir: string | undefined;
  /** HTTP_HANDLER_ALLOWED_HOSTS, for the thread's http handler. */
  httpAllowedHosts: readonly string[];
  logLevel: LogLevel;
  /** The worker's tracing settings: a thread exports its handlers' spans as the worker does. */
  tracing: TracingConfig;
  /** The worker's service name, used unless OTEL_SERVICE_NAME names another. */
  serviceName: string;
}

/** The handler context fields that are plain data; the thread adds signal, logger and progress. */
export interface ThreadTaskContext {
  jobId: string;
  jobName: string;
  lane: string;
  attempt: number;
  maxAttempts: number;
  tenant: string | undefined;
}

export type ToThread =
  | {
      type: 'run';
      taskId: number;
      name: string;
      /** The job's payload as stored (JSON data); the thread parses it with the handler's schema. */
      payload: unknown;
      ctx: ThreadTaskContext;
      /** The attempt span's W3C trace context: the handler's spans are its children. */
      trace?: Record<string, string>;
    }
  | { type: 'abort'; taskId: number; reason: SerializedError }
  /** The pool is closing: flush what the thread has not exported yet, then exit. */
  | { type: 'shutdown' };

export type FromThread =
  /** The thread has loaded its handlers (and tracing) and takes calls. */
  | { type: 'ready' }
  /** The thread could not load its handlers; it takes no call. */
  | { type: 'fatal'; error: SerializedError }
  /** An error no handler call caught (a rejection or a throw after the call ended), and the job
   * of the last call that started in the thread, its likely source. */
  | { type: 'stray'; error: SerializedError; jobId: string | undefined; handler: string | undefined }
  /** What code in the thread printed with console.warn or console.error, formatted as the console
   * formats it, and the call that was running then or, between calls, the last one that started. */
  | { type: 'console'; level: ConsoleLevel; message: string; jobId: string | undefined; handler: string | undefined; attempt: number | undefined }
  | { type: 'progress'; taskId: number; value: JobProgress }
  /** `value` is the result's stored (JSON) form, made in the thread. */
  | { type: 'done'; taskId: number; ok: true; value: unknown }
  | { type: 'done'; taskId: number; ok: false; error: SerializedError };

/** The bullpen error class an error is an instance of (a subclass keeps its own name). */
type ErrorKind = 'PermanentError' | 'RetryableError' | 'RateLimitedError' | 'TimeoutError' | 'CancelledError';

/**
 * The fields of a thrown value that classifyError (@bullpen/core) and the attempt's record read:
 * a network code, an HTTP status, and a bullpen error's class, retryability and Retry-After. They
 * are carried for anything thrown, an Error or not (an HTTP client may throw `{ status: 503 }`), so
 * that the lane's errorRules and the built-in classes judge the copy as they would the original.
 */
const CLASSIFIED_FIELDS = ['code', 'status', 'statusCode', 'errorClass', 'retryable', 'retryAfterMs'] as const;

type Primitive = string | number | boolean | bigint;

export interface SerializedError {
  /** The error's name; for a thrown non-Error, its `name` field when that is a string, else "Error". */
  name: string;
  kind?: ErrorKind;
  /** An Error's message; for anything else thrown, describeThrown's account of it, which is what
   * the attempt records for the original. */
  message: string;
  stack?: string;
  /** CLASSIFIED_FIELDS the value had as strings, numbers or booleans, as they were. */
  fields?: Partial<Record<(typeof CLASSIFIED_FIELDS)[number], Primitive>>;
  /** CLASSIFIED_FIELDS that held something else (an object, a function, a symbol): rebuilt as an
   * empty object, which classification treats alike (it reads strings and numbers only, and such a
   * field still hides the ones a `??` would look at after it). */
  opaqueFields?: Array<(typeof CLASSIFIED_FIELDS)[number]>;
  /** `response.status` when it is a number: where HTTP clients (axios, got) put the status. */
  responseStatus?: number;
  /** The error's `cause`, as far as MAX_CAUSE_DEPTH. */
  cause?: SerializedError;
}

/** How deep a chain of causes is carried; a cycle ends it sooner. */
const MAX_CAUSE_DEPTH = 4;

/**
 * The plain data of anything thrown, for the trip out of a handler thread. Never throws: a value
 * whose fields cannot be read (a getter that throws, a revoked Proxy, an object without a
 * prototype that String() refuses) still gives a message, so the call always gets its answer.
 */
export function serializeError(err: unknown): SerializedError {
  return serializeAt(err, 0, new Set());
}

function serializeAt(err: unknown, depth: number, seen: Set<unknown>): SerializedError {
  try {
    if (typeof err === 'object' && err !== null) seen.add(err);
    const isError = safely(() => err instanceof Error, false);
    const name = safely(() => fieldOf(err, 'name'), undefined);
    const out: SerializedError = {
      name: typeof name === 'string' ? name : 'Error',
      message: isError ? safely(() => String((err as Error).message), '') : describe(err),
    };
    if (isError) {
      const stack = safely(() => (err as Error).stack, undefined);
      if (typeof stack === 'string') out.stack = stack;
      const kind = safely(() => kindOf(err as Error), undefined);
      if (kind) out.kind = kind;
    }
    if (typeof err !== 'object' || err === null) return out;
    for (const key of CLASSIFIED_FIELDS) {
      const value = safely(() => fieldOf(err, key), undefined);
      if (value === undefined || value === null) continue;
      if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
        (out.fields ??= {})[key] = value;
      } else {
        (out.opaqueFields ??= []).push(key);
      }
    }
    const responseStatus = safely(() => fieldOf(fieldOf(err, 'response'), 'status'), undefined);
    if (typeof responseStatus === 'number') out.responseStatus = responseStatus;
    const cause = safely(() => fieldOf(err, 'cause'), undefined);
    if (cause !== undefined && depth < MAX_CAUSE_DEPTH && !seen.has(cause)) out.cause = serializeAt(cause, depth + 1, seen);
    return out;
  } catch {
    return { name: 'Error', message: 'a thrown value that could not be read' };
  }
}

/** Rebuilds the error a handler threw, as the class the classification knows, with the fields it reads. */
export function deserializeError(s: SerializedError): Error {
  const fields = s.fields ?? {};
  let err: Error;
  switch (s.kind) {
    case 'PermanentError':
      err = new PermanentError(s.message, errorClassOf(fields.errorClass));
      break;
    case 'RetryableError':
      err = new RetryableError(s.message, errorClassOf(fields.errorClass));
      break;
    case 'RateLimitedError':
      err = new RateLimitedError(s.message, typeof fields.retryAfterMs === 'number' ? fields.retryAfterMs : undefined);
      break;
    case 'TimeoutError':
      err = new TimeoutError(s.message);
      break;
    case 'CancelledError':
      err = new CancelledError(s.message);
      break;
    default:
      err = new Error(s.message);
  }
  // A subclass (class NotFound extends PermanentError) comes back as its base class, with its name.
  if (s.name !== err.name) define(err, 'name', s.name, false);
  const target = err as unknown as Record<string, unknown>;
  for (const [key, value] of Object.entries(fields)) if (target[key] !== value) define(err, key, value, true);
  for (const key of s.opaqueFields ?? []) define(err, key, {}, true);
  if (s.responseStatus !== undefined) define(err, 'response', { status: s.responseStatus }, true);
  if (s.cause) define(err, 'cause', deserializeError(s.cause), false);
  if (s.stack) err.stack = s.stack;
  return err;
}

function define(err: Error, key: string, value: unknown, enumerable: boolean): void {
  Object.defineProperty(err, key, { value, enumerable, configurable: true, writable: true });
}

function errorClassOf(value: unknown): ErrorClass {
  return (ERROR_CLASSES as readonly unknown[]).includes(value) ? (value as ErrorClass) : 'handler';
}

function fieldOf(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
}

function describe(value: unknown): string {
  return safely(() => describeThrown(value), 'a thrown value that could not be described');
}

function safely<T, F>(read: () => T, fallback: F): T | F {
  try {
    return read();
  } catch {
    return fallback;
  }
}

function kindOf(err: Error): ErrorKind | undefined {
  // Most specific first: RateLimitedError and TimeoutError are RetryableErrors.
  if (err instanceof RateLimitedError) return 'RateLimitedError';
  if (err instanceof TimeoutError) return 'TimeoutError';
  if (err instanceof CancelledError) return 'CancelledError';
  if (err instanceof PermanentError) return 'PermanentError';
  if (err instanceof RetryableError) return 'RetryableError';
  return undefined;
}
