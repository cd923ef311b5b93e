// `http` {url, method?, headers?, body?, connectTimeoutMs?, timeoutMs?}: one request, following up
// to five redirects. Network errors and 5xx are retryable; 429, and 503 with Retry-After, are rate
// limits whose Retry-After delays the next attempt; 408 is a retryable timeout; other 4xx are
// permanent. The call is a CLIENT span under the attempt's span and sends traceparent downstream.
// It connects only to public addresses and those HTTP_HANDLER_ALLOWED_HOSTS names
// (http-destinations.ts in core): the check runs on the addresses the connection is made to, in
// the lookup that resolves each host, so a name that resolves one way when checked and another
// when connected, or a redirect to an internal address, cannot get past it. Node's http client
// rather than fetch for that reason: fetch takes no lookup of its own.
import dns from 'node:dns';
import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import type { Readable } from 'node:stream';
import zlib from 'node:zlib';
import { HttpDestinations, PermanentError, RateLimitedError, RetryableError, type BullpenError } from '@bullpen/core';
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

/** Redirects followed before a request fails. */
export const MAX_REDIRECTS = 5;

/** The http handler, calling public addresses and those `destinations` allows. */
export function createHttpHandler(destinations: HttpDestinations = new HttpDestinations()) {
  return defineHandler({
    name: 'http',
    payload: httpPayload,
    run: async (request, { signal }): Promise<HttpResult> => {
      const target = `${request.method} ${redactUrl(request.url)}`;
      // Before the timers: a request that cannot be made leaves none behind.
      const init = headersAndBody(target, request);
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
      // A child of the attempt's span (the handler runs in its context); sends traceparent.
      const span = startClientSpan(request.method, request.url, init.headers);
      let status: number | undefined;
      try {
        let response: Answer;
        try {
          const headers = Object.fromEntries(init.headers.entries());
          response = await send(new URL(request.url), request.method, headers, init.body, combined, destinations, 0);
        } catch (err) {
          throw abortReason(signal, local.signal) ?? requestError(target, err);
        }
        clearTimeout(connectTimer);
        status = response.status;
        recordResponse(span, status);
        let body: { text: string; truncated: boolean };
        try {
          body = await readLimited(response.body, HTTP_BODY_MAX_BYTES);
        } catch (err) {
          throw abortReason(signal, local.signal) ?? requestError(target, err);
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
}

export const httpHandler = createHttpHandler();

/** A response whose headers have arrived; its body is still to be read. */
interface Answer {
  status: number;
  headers: Headers;
  /** Decoded when the server compressed it. */
  body: Readable;
}

/** What the handler asks servers for and decodes, as fetch does. */
const ACCEPT_ENCODING = 'gzip, deflate, br';

/** The response's body, decompressed when its Content-Encoding says so. */
function decoded(answer: IncomingMessage): Readable {
  const encoding = String(answer.headers['content-encoding'] ?? '').trim().toLowerCase();
  const decoder = encoding === 'gzip' || encoding === 'x-gzip' ? zlib.createGunzip() : encoding === 'deflate' ? zlib.createInflate() : encoding === 'br' ? zlib.createBrotliDecompress() : undefined;
  if (!decoder) return answer;
  answer.on('error', (err) => decoder.destroy(err));
  // A body cut at its limit is destroyed on the decoder's side: let go of the response too.
  decoder.on('close', () => {
    if (!answer.complete) answer.destroy();
  });
  return answer.pipe(decoder);
}

/** The code of the error a lookup fails with when the handler may not call the host. */
const DESTINATION_REFUSED = 'EBULLPEN_DESTINATION';

function refusedDestination(message: string): Error {
  return Object.assign(new Error(message), { code: DESTINATION_REFUSED });
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Request headers not sent on to another origin when a redirect leads there (as fetch does). */
const CREDENTIALS = ['authorization', 'cookie', 'proxy-authorization'];

/**
 * One request, and the redirects that follow it. Each connection resolves its host through
 * `destinations` (an IP address in the URL is checked here, as nothing looks it up).
 */
async function send(
  url: URL,
  method: string,
  headers: Record<string, string>,
  body: string | undefined,
  signal: AbortSignal,
  destinations: HttpDestinations,
  redirects: number,
): Promise<Answer> {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (isIP(host)) {
    const refusal = destinations.refusal(host, [host]);
    if (refusal) throw refusedDestination(refusal);
  }
  const lookup: LookupFunction = (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, '', 0);
      const refusal = destinations.refusal(hostname, addresses.map((a) => a.address));
      if (refusal) return callback(refusedDestination(refusal), '', 0);
      const first = addresses[0];
      if (options.all) (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, addresses);
      else if (first) callback(null, first.address, first.family);
      else callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '', 0);
    });
  };
  const client = url.protocol === 'https:' ? https : http;
  const sent = { 'accept-encoding': ACCEPT_ENCODING, ...headers };
  const answer = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = client.request(url, { method, headers: sent, signal, lookup }, resolve);
    req.on('error', reject);
    req.end(body);
  });
  const status = answer.statusCode ?? 0;
  const location = answer.headers.location;
  if (!REDIRECTS.has(status) || location === undefined) return { status, headers: toHeaders(answer.headers), body: decoded(answer) };
  answer.resume();
  if (redirects >= MAX_REDIRECTS) throw Object.assign(new Error(`more than ${MAX_REDIRECTS} redirects`), { code: TOO_MANY_REDIRECTS });
  const next = new URL(location, url);
  if (next.protocol !== 'http:' && next.protocol !== 'https:') throw refusedDestination(`a redirect to ${next.protocol} is not followed`);
  // 303, and 301/302 after a POST, continue as a GET without the body; the rest repeat the request.
  const asGet = status === 303 || ((status === 301 || status === 302) && method === 'POST');
  const nextHeaders = Object.fromEntries(
    Object.entries(headers).filter(
      ([name]) => !(asGet && name.startsWith('content-')) && !(next.origin !== url.origin && CREDENTIALS.includes(name)),
    ),
  );
  return send(next, asGet ? 'GET' : method, nextHeaders, asGet ? undefined : body, signal, destinations, redirects + 1);
}

function toHeaders(incoming: IncomingHttpHeaders): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) headers.append(name, one);
  }
  return headers;
}

/** The request's headers and body; a header no HTTP request can carry (a newline in it) fails the job for good. */
function headersAndBody(target: string, request: z.output<typeof httpPayload>): { headers: Headers; body?: string } {
  try {
    return requestBody(request);
  } catch (err) {
    throw new PermanentError(`${target}: ${(err as Error).message}`, 'validation');
  }
}

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

/** A request that got no answer: a destination the handler may not call (permanent), or the network. */
/** A redirect loop, or a chain longer than MAX_REDIRECTS: the same answer comes at the next attempt. */
const TOO_MANY_REDIRECTS = 'ERR_TOO_MANY_REDIRECTS';

/**
 * Node's codes for a server certificate the client refuses. Retrying cannot change a certificate
 * that is expired, self-signed or for another name before someone replaces it: permanent, unless a
 * lane's errorRules say otherwise (they match these codes on the error's cause).
 */
const TLS_CERTIFICATE_CODES = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/** The error for a request that got no answer; its cause keeps the code a lane's errorRules match. */
function requestError(target: string, err: unknown): BullpenError {
  const code = (err as { code?: unknown }).code;
  if (code === DESTINATION_REFUSED) return new PermanentError(`${target}: ${(err as Error).message}`, 'validation');
  const detail = typeof code === 'string' ? code : String((err as Error)?.message ?? err);
  if (code === TOO_MANY_REDIRECTS) return new PermanentError(`${target}: ${(err as Error).message}`, 'network', { cause: err });
  if (typeof code === 'string' && TLS_CERTIFICATE_CODES.has(code)) {
    return new PermanentError(`${target}: the server's TLS certificate was refused (${detail})`, 'network', { cause: err });
  }
  return new RetryableError(`${target}: request failed (${detail})`, 'network', { cause: err });
}

function statusError(target: string, response: Answer, text: string): BullpenError {
  const snippet = text.length > ERROR_SNIPPET_CHARS ? `${text.slice(0, ERROR_SNIPPET_CHARS)}…` : text;
  const message = `${target}: HTTP ${response.status}${snippet ? ` ${snippet}` : ''}`;
  const retryAfterMs = parseRetryAfter(response.headers.get('retry-after'));
  const { status } = response;
  // The status goes with the error, so that a lane's errorRules can match it.
  return Object.assign(typedStatusError(message, status, retryAfterMs), { status });
}

function typedStatusError(message: string, status: number, retryAfterMs: number | undefined): BullpenError {
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

async function readLimited(body: Readable, maxBytes: number): Promise<{ text: string; truncated: boolean }> {
  const chunks: Buffer[] = [];
  let size = 0;
  let truncated = false;
  for await (const chunk of body) {
    chunks.push(chunk as Buffer);
    size += (chunk as Buffer).byteLength;
    if (size > maxBytes) {
      truncated = true;
      body.destroy();
      break;
    }
  }
  const bytes = Buffer.concat(chunks).subarray(0, maxBytes);
  return { text: new TextDecoder().decode(bytes), truncated };
}

function decodeBody(response: Answer, body: { text: string; truncated: boolean }): unknown {
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
