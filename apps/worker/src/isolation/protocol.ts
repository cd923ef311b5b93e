// Messages between an isolated lane's pool (main thread) and its handler threads, and how errors
// cross the boundary: structured clone keeps only plain data, so an error travels as its fields and
// is rebuilt as the same bullpen error class, which its classification depends on.
import {
  BullpenError,
  CancelledError,
  PermanentError,
  RateLimitedError,
  RetryableError,
  TimeoutError,
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
  | { type: 'progress'; taskId: number; value: JobProgress }
  | { type: 'done'; taskId: number; ok: true; value: unknown }
  | { type: 'done'; taskId: number; ok: false; error: SerializedError };

/** The bullpen error class an error is an instance of (a subclass keeps its own name). */
type ErrorKind = 'PermanentError' | 'RetryableError' | 'RateLimitedError' | 'TimeoutError' | 'CancelledError';

export interface SerializedError {
  name: string;
  kind?: ErrorKind;
  message: string;
  stack?: string;
  code?: string;
  errorClass?: ErrorClass;
  retryAfterMs?: number;
  status?: number;
}

export function serializeError(err: unknown): SerializedError {
  if (!(err instanceof Error)) return { name: 'Error', message: typeof err === 'string' ? err : String(err) };
  const fields = err as Error & Record<string, unknown>;
  const out: SerializedError = { name: err.name, message: err.message };
  if (err.stack) out.stack = err.stack;
  if (typeof fields.code === 'string') out.code = fields.code;
  if (err instanceof BullpenError) out.errorClass = err.errorClass;
  const kind = kindOf(err);
  if (kind) out.kind = kind;
  if (err instanceof RateLimitedError && err.retryAfterMs !== undefined) out.retryAfterMs = err.retryAfterMs;
  // The places classifyError looks for an HTTP status, an HTTP client's error.response included.
  const response = fields.response as Record<string, unknown> | undefined;
  const status = fields.status ?? fields.statusCode ?? (typeof response === 'object' && response !== null ? response.status : undefined);
  if (typeof status === 'number') out.status = status;
  return out;
}

/** Rebuilds the error a handler threw, as the class the classification knows. */
export function deserializeError(s: SerializedError): Error {
  let err: Error;
  switch (s.kind ?? s.name) {
    case 'PermanentError':
      err = new PermanentError(s.message, s.errorClass ?? 'handler');
      break;
    case 'RetryableError':
      err = new RetryableError(s.message, s.errorClass ?? 'handler');
      break;
    case 'RateLimitedError':
      err = new RateLimitedError(s.message, s.retryAfterMs);
      break;
    case 'TimeoutError':
      err = new TimeoutError(s.message);
      break;
    case 'CancelledError':
      err = new CancelledError(s.message);
      break;
    default: {
      err = new Error(s.message);
      err.name = s.name;
      const fields = err as Error & Record<string, unknown>;
      if (s.code !== undefined) fields.code = s.code;
      if (s.status !== undefined) fields.status = s.status;
    }
  }
  // A subclass (class NotFound extends PermanentError) comes back as its base class, with its name.
  if (s.kind && s.name !== err.name) Object.defineProperty(err, 'name', { value: s.name, configurable: true, writable: true });
  if (s.stack) err.stack = s.stack;
  return err;
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
