// `http` {url, method?, headers?, body?, connectTimeoutMs?, timeoutMs?}: one request with global
// fetch. Network errors and 5xx are retryable; 429, and 503 with Retry-After, are rate limits whose
// Retry-After delays the next attempt; 408 is a retryable timeout; other 4xx are permanent. The call
// is a CLIENT span under the attempt's span and sends traceparent downstream.
import { PermanentError, RateLimitedError, RetryableError, type BullpenError } from '@bullpen/core';
import { z } from 'zod';
import { defineHandler } from '../handler';
import { recordRequestError, recordResponse, startClientSpan } from './http-client-span';

/** Response bodies longer than this are cut; the job's return value must stay small. */
export const HTTP_BODY_MAX_BYTES = 64 * 1024;
const ERROR_SNIPPET_CHARS = 200;
const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

const httpUrl = z.string().refine((value) => {
  try {
    const { protocol } = new URL(value);
    return protocol === 'http:' || protocol === 'https:';
  } catch {
    return false;
  }
}, 'expected an http:// or https:// URL');

const timeout = z.number().int().positive().max(3_600_000);

export const httpPayload = z
  .object({
    url: httpUrl,
    method: z.enum(METHODS).default('GET'),
    headers: z.record(z.string(), z.string()).optional(),
    /** A string is sent as is; anything else as JSON. */
    body: z.unknown().optional(),
    /** Time allowed until response headers arrive. fetch does not expose the TCP connect phase
     * on its own, so this bounds connect plus the server's time to first byte. */
    connectTimeoutMs: timeout.optional(),
    /** Time allowed for the whole request, body included. */
    timeoutMs: timeout.optional(),
  })
  .strict()
  .refine((p) => p.body === undefined || (p.method !== 'GET' && p.method !== 'HEAD'), {
    path: ['body'],
    message: 'expected no body with GET or HEAD',
  });

export interface HttpResult {
  status: number;
  /** Parsed JSON when the response says it is JSON and fits; otherwise text, cut at HTTP_BODY_MAX_BYTES. */
  body: unknown;
  truncated: boolean;
}

export const httpHandler = defineHandler({
  name: 'http',
  payload: httpPayload,
  run: async (request, { signal }): Promise<HttpResult> => {
    const target = `${request.method} ${redactUrl(request.url)}`;
    const local = new AbortController();
    const limit = (ms: number | undefined, error: () => BullpenError) =>
      ms === undefined ? undefined : setTimeout(() => local.abort(error()), ms);
    const connectTimer = limit(
      request.connectTimeoutMs,
      () => new RetryableError(`${target}: no response within connectTimeoutMs (${request.connectTimeoutMs} ms)`, 'network'),
    );
    const totalTimer = limit(
      request.timeoutMs,
      () => new RetryableError(`${target}: not finished within timeoutMs (${request.timeoutMs} ms)`, 'timeout'),
    );
    const combined = AbortSignal.any([signal, local.signal]);
    const init = requestBody(request);
    // A child of the attempt's span (the handler runs in its context); sends traceparent.
    const span = startClientSpan(request.method, request.url, init.headers);
    let status: number | undefined;
    try {
      let response: Response;
      try {
        response = await fetch(request.url, { method: request.method, ...init, signal: combined });
      } catch (err) {
        throw abortReason(signal, local.signal) ?? networkError(target, err);
      }
      clearTimeout(connectTimer);
      status = response.status;
      recordResponse(span, status);
      let body: { text: string; truncated: boolean };
      try {
        body = await readLimited(response, HTTP_BODY_MAX_BYTES);
      } catch (err) {
        throw abortReason(signal, local.signal) ?? networkError(target, err);
      }
      if (response.status >= 400) throw statusError(target, response, body.text);
      return { status: response.status, body: decodeBody(response, body), truncated: body.truncated };
    } catch (err) {
      // An error status is on the span already; what is left is a request that got no answer.
      if (status === undefined || status < 400) recordRequestError(span, errorTypeOf(err), (err as Error)?.message ?? String(err));
      throw err;
    } finally {
      span.end();
      clearTimeout(connectTimer);
      clearTimeout(totalTimer);
    }
  },
});

function requestBody(request: z.output<typeof httpPayload>): { headers: Headers; body?: string } {
  const headers = new Headers(request.headers);
  if (request.body === undefined) return { headers };
  if (typeof request.body === 'string') return { headers, body: request.body };
  if (!headers.has('content-type')) headers.set('content-type', 'application/json');
  return { headers, body: JSON.stringify(request.body) };
}

/** error.type of a request that failed: bullpen's error class, else the error's name. */
function errorTypeOf(err: unknown): string {
  const errorClass = (err as { errorClass?: unknown })?.errorClass;
  if (typeof errorClass === 'string') return errorClass;
  return (err as Error)?.name ?? 'Error';
}

function abortReason(...signals: AbortSignal[]): unknown {
  return signals.find((s) => s.aborted)?.reason;
}

function networkError(target: string, err: unknown): RetryableError {
  // fetch rejects with TypeError('fetch failed') whose cause carries the socket error's code.
  const cause = (err as { cause?: { code?: unknown; message?: unknown } }).cause;
  const detail = typeof cause?.code === 'string' ? cause.code : String(cause?.message ?? (err as Error).message);
  return new RetryableError(`${target}: request failed (${detail})`, 'network', { cause: err });
}

function statusError(target: string, response: Response, text: string): BullpenError {
  const snippet = text.length > ERROR_SNIPPET_CHARS ? `${text.slice(0, ERROR_SNIPPET_CHARS)}…` : text;
  const message = `${target}: HTTP ${response.status}${snippet ? ` ${snippet}` : ''}`;
  const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'));
  const { status } = response;
  if (status === 429) return new RateLimitedError(message, retryAfterMs);
  if (status === 503 && retryAfterMs !== undefined) return new RateLimitedError(message, retryAfterMs);
  if (status === 408) return new RetryableError(message, 'timeout');
  if (status >= 500) return new RetryableError(message, 'http_5xx');
  return new PermanentError(message, 'http_4xx');
}

/** Retry-After is either delay-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

async function readLimited(response: Response, maxBytes: number): Promise<{ text: string; truncated: boolean }> {
  if (!response.body) return { text: '', truncated: false };
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let truncated = false;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
    if (size > maxBytes) {
      truncated = true;
      await reader.cancel();
      break;
    }
  }
  const bytes = Buffer.concat(chunks).subarray(0, maxBytes);
  return { text: new TextDecoder().decode(bytes), truncated };
}

function decodeBody(response: Response, body: { text: string; truncated: boolean }): unknown {
  const type = response.headers.get('content-type') ?? '';
  if (!body.truncated && /[/+]json\b/i.test(type) && body.text !== '') {
    try {
      return JSON.parse(body.text);
    } catch {
      return body.text;
    }
  }
  return body.text;
}

/** Keeps credentials and query strings out of error messages and logs. */
function redactUrl(raw: string): string {
  const url = new URL(raw);
  return `${url.protocol}//${url.host}${url.pathname}`;
}
