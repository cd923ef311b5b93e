// A small client for bullpen's REST API with errors that map to CLI exit codes. An answer is
// believed only when it is what the API sends: JSON. A proxy's HTML page, even with 200, is an
// error, and a request that got no answer is an outcome unknown, not an API that cannot be reached.
import type { CliConfig } from './config';
import { UsageError } from './config';

export class ApiError extends Error {
  override readonly name: string = 'ApiError';
  constructor(
    message: string,
    readonly status: number,
    readonly exitCode: number,
    readonly body?: unknown,
    /** The answer's Retry-After, in seconds, when it had one. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }

  /** The problem's `code`, when the API answered with a problem document. */
  get code(): string | undefined {
    const code = typeof this.body === 'object' && this.body !== null ? (this.body as { code?: unknown }).code : undefined;
    return typeof code === 'string' ? code : undefined;
  }
}

/** Nothing was sent: the API's address could not be resolved or connected to. Exit code 3. */
export class ApiUnreachableError extends ApiError {
  override readonly name = 'ApiUnreachableError';
  constructor(message: string) {
    super(message, 0, 3);
  }
  override get code(): string {
    return 'unreachable';
  }
}

/** The request was sent but no answer came (a timeout, a dropped connection): whatever it asked
 * for may or may not have happened. Exit code 1. */
export class OutcomeUnknownError extends ApiError {
  override readonly name = 'OutcomeUnknownError';
  constructor(message: string) {
    super(message, 0, 1);
  }
  override get code(): string {
    return 'outcome_unknown';
  }
}

/** An answer that is not the API's: not JSON, an error that is not a problem document, or JSON of
 * another shape. Exit code 1, or 4 for a 401 or 403 (a proxy that wants credentials). */
export class UnexpectedAnswerError extends ApiError {
  override readonly name = 'UnexpectedAnswerError';
  constructor(message: string, status: number, exitCode = 1, retryAfterSeconds?: number) {
    super(message, status, exitCode, undefined, retryAfterSeconds);
  }
  override get code(): string {
    return 'unexpected_answer';
  }
}

/** Connection errors raised before any byte of the request could be sent. */
const NOT_SENT = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_HAS_EXPIRED',
  'ERR_SSL_WRONG_VERSION_NUMBER',
]);

/** Longest part of an unexpected body quoted in a message. */
const QUOTE_CHARS = 200;

/** A request body already serialized as JSON, sent as it is. */
export class RawJson {
  constructor(readonly text: string) {}
}

export interface ApiAnswer<T> {
  status: number;
  body: T;
  /** The answer's Retry-After, in seconds, when it had one. */
  retryAfterSeconds: number | undefined;
  /** The answer's Date: the API host's clock when it answered, in ms since the epoch, rounded down
   * to the second (HTTP dates have no finer unit); undefined when it had none. */
  dateMs: number | undefined;
}

export class ApiClient {
  constructor(private readonly config: CliConfig) {}

  async request<T>(method: string, path: string, body?: unknown): Promise<ApiAnswer<T>> {
    if (!this.config.apiKey) throw new UsageError('BULLPEN_API_KEY is not set: export the API key to use');
    const url = `${this.config.apiUrl}${path}`;
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, {
        method,
        headers: {
          authorization: `Bearer ${this.config.apiKey}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: body instanceof RawJson ? body.text : JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.config.timeoutMs),
      });
      text = await res.text();
    } catch (err) {
      throw this.failure(method, url, err);
    }
    const contentType = res.headers.get('content-type') ?? 'no content type';
    const retryAfter = Number(res.headers.get('retry-after') ?? Number.NaN);
    const retryAfterSeconds = Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter : undefined;
    let parsed: unknown;
    let isJson = false;
    if (/\bjson\b/i.test(contentType) && text !== '') {
      try {
        parsed = JSON.parse(text);
        isJson = true;
      } catch {
        // Said JSON, is not: handled below as any other body that is not JSON.
      }
    }
    if (!isJson) parsed = text;
    const exitCode = res.status === 401 || res.status === 403 ? 4 : 1;
    // An error the API sends is a problem document with a `code`; any other (a proxy's or a
    // gateway's page, JSON or not) is named as what it is, whatever its status.
    if (!isJson || (res.status >= 400 && !isProblem(parsed))) {
      const message = `unexpected answer (${res.status}, ${contentType}) from ${method} ${url}: ${quote(text)}`;
      throw new UnexpectedAnswerError(message, res.status, exitCode, retryAfterSeconds);
    }
    if (res.status >= 400) {
      throw new ApiError(`${res.status}: ${describe(parsed as Problem)}`, res.status, exitCode, parsed, retryAfterSeconds);
    }
    const date = Date.parse(res.headers.get('date') ?? '');
    return { status: res.status, body: parsed as T, retryAfterSeconds, dateMs: Number.isFinite(date) ? date : undefined };
  }

  private failure(method: string, url: string, err: unknown): ApiError {
    const e = err as Error & { cause?: { code?: string; message?: string; errors?: Array<{ code?: string }> } };
    if (e.name === 'TimeoutError') {
      const seconds = this.config.timeoutMs / 1000;
      const waited = `no answer from ${method} ${url} within ${seconds} s (BULLPEN_API_TIMEOUT_MS)`;
      if (method === 'GET') return new OutcomeUnknownError(waited);
      const what = /\/jobs(\/bulk)?$/.test(url) ? 'the job(s) may exist' : 'the change may have been made';
      return new OutcomeUnknownError(`${waited}; the outcome is unknown: ${what}`);
    }
    const code = e.cause?.code ?? e.cause?.errors?.find((x) => x.code)?.code;
    const why = [code, e.cause?.message ?? e.message].filter(Boolean).join(': ');
    if (method === 'GET' || (code !== undefined && NOT_SENT.has(code))) {
      return new ApiUnreachableError(`cannot reach the API at ${this.config.apiUrl} (${why})`);
    }
    return new OutcomeUnknownError(`the connection to ${url} failed before an answer came (${why}); the outcome of ${method} is unknown`);
  }
}

function quote(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  if (flat === '') return '(empty body)';
  return flat.length > QUOTE_CHARS ? `${flat.slice(0, QUOTE_CHARS)}… (${text.length} characters)` : flat;
}

/** The API's error answer (RFC 9457), as far as the CLI reads it. */
interface Problem {
  code: string;
  detail?: string;
  title?: string;
  errors?: { field: string; message: string }[];
}

function isProblem(body: unknown): body is Problem {
  return typeof body === 'object' && body !== null && !Array.isArray(body) && typeof (body as { code?: unknown }).code === 'string';
}

function describe(p: Problem): string {
  const fields = Array.isArray(p.errors) ? p.errors.map((e) => `${e.field}: ${e.message}`).join('; ') : undefined;
  return [p.code, p.detail ?? p.title, fields].filter(Boolean).join(' - ');
}
