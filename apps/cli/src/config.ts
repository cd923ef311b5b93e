// The CLI's one reading of its environment.
export interface CliConfig {
  /** BULLPEN_API_URL: an http: or https: URL; default http://localhost:3000. */
  apiUrl: string;
  /** BULLPEN_API_KEY; required for commands that call the API. */
  apiKey: string | undefined;
  /** BULLPEN_API_TIMEOUT_MS: how long a request waits for the API's answer; default 30000. */
  timeoutMs: number;
}

const DEFAULT_TIMEOUT_MS = 30_000;

export function loadCliConfig(env: Readonly<Record<string, string | undefined>>): CliConfig {
  const apiUrl = (env.BULLPEN_API_URL || 'http://localhost:3000').replace(/\/+$/, '');
  let url: URL | undefined;
  try {
    url = new URL(apiUrl);
  } catch {
    url = undefined;
  }
  // `localhost:3000` parses as a URL whose protocol is `localhost:`.
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') {
    throw new UsageError(`BULLPEN_API_URL: expected an http:// or https:// URL such as http://localhost:3000, got ${JSON.stringify(env.BULLPEN_API_URL)}`);
  }
  let timeoutMs = DEFAULT_TIMEOUT_MS;
  if (env.BULLPEN_API_TIMEOUT_MS !== undefined && env.BULLPEN_API_TIMEOUT_MS !== '') {
    timeoutMs = Number(env.BULLPEN_API_TIMEOUT_MS);
    if (!/^\d+$/.test(env.BULLPEN_API_TIMEOUT_MS) || timeoutMs < 1) {
      throw new UsageError(`BULLPEN_API_TIMEOUT_MS: expected a whole number of milliseconds of at least 1, got ${JSON.stringify(env.BULLPEN_API_TIMEOUT_MS)}`);
    }
  }
  return Object.freeze({ apiUrl, apiKey: env.BULLPEN_API_KEY || undefined, timeoutMs });
}

/** Bad arguments or settings: exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly exitCode = 2;
}
