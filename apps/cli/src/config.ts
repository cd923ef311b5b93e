// The CLI's one reading of its environment.
export interface CliConfig {
  /** BULLPEN_API_URL; default http://localhost:3000. */
  apiUrl: string;
  /** BULLPEN_API_KEY; required for commands that call the API. */
  apiKey: string | undefined;
}

export function loadCliConfig(env: Readonly<Record<string, string | undefined>>): CliConfig {
  const apiUrl = (env.BULLPEN_API_URL || 'http://localhost:3000').replace(/\/+$/, '');
  try {
    new URL(apiUrl);
  } catch {
    throw new UsageError(`BULLPEN_API_URL: expected an http(s) URL, got ${JSON.stringify(env.BULLPEN_API_URL)}`);
  }
  return { apiUrl, apiKey: env.BULLPEN_API_KEY || undefined };
}

/** Bad arguments or settings: exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly exitCode = 2;
}
