// A small client for bullpen's REST API with errors that map to CLI exit codes.
import type { CliConfig } from './config';
import { UsageError } from './config';

export class ApiError extends Error {
  override readonly name = 'ApiError';
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

export class ApiClient {
  constructor(private readonly config: CliConfig) {}

  async request<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    if (!this.config.apiKey) throw new UsageError('BULLPEN_API_KEY is not set: export the API key to use');
    let res: Response;
    try {
      res = await fetch(`${this.config.apiUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.config.apiKey}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (err) {
      throw new ApiError(`cannot reach the API at ${this.config.apiUrl}: ${(err as Error).message}`, 0, 3);
    }
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      // Not JSON: keep the text.
    }
    if (res.status === 401 || res.status === 403) {
      throw new ApiError(`${res.status}: ${describe(parsed)}`, res.status, 4, parsed);
    }
    if (res.status >= 400) {
      const retryAfter = Number(res.headers.get('retry-after') ?? Number.NaN);
      throw new ApiError(`${res.status}: ${describe(parsed)}`, res.status, 1, parsed, Number.isFinite(retryAfter) ? retryAfter : undefined);
    }
    return { status: res.status, body: parsed as T };
  }
}

function describe(body: unknown): string {
  if (typeof body === 'object' && body !== null) {
    const p = body as { code?: string; detail?: string; title?: string; errors?: { field: string; message: string }[] };
    const fields = p.errors?.map((e) => `${e.field}: ${e.message}`).join('; ');
    return [p.code, p.detail ?? p.title, fields].filter(Boolean).join(' - ');
  }
  return String(body);
}
