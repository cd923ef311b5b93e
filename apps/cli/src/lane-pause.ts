// `bullpen pause <lane>` and `bullpen resume <lane>`: workers stop taking the lane's jobs, or take
// them again. A lane is paused for every tenant, so the API lets only operator tenants
// (API_OPERATOR_TENANTS) do either; a refusal says so, and how to find the lanes a key may use.
import { parseArgs } from 'node:util';
import { ApiError, type ApiClient } from './api-client';
import { UsageError } from './config';
import type { Out } from './io';

export const PAUSE_USAGE = `pause <lane>                                  workers take no new jobs from the lane (active ones finish;
                                                submissions are still accepted); for every tenant: operator tenants only`;
export const RESUME_USAGE = 'resume <lane>                                 workers take the lane\'s jobs again (operator tenants only)';

interface LanePaused {
  lane: string;
  paused: boolean;
}

function isLanePaused(body: unknown): body is LanePaused {
  const b = body as Partial<LanePaused> | null;
  return typeof b === 'object' && b !== null && typeof b.lane === 'string' && typeof b.paused === 'boolean';
}

/** What to do about a refusal, added to the API's own words. */
function advice(err: ApiError): string | undefined {
  switch (err.code) {
    case 'operator_only':
      return `use the key of a tenant API_OPERATOR_TENANTS names`;
    case 'lane_forbidden':
    case 'lane_not_found':
      return '`bullpen lanes` lists the lanes this key may use';
    default:
      return undefined;
  }
}

export async function setPaused(command: 'pause' | 'resume', args: string[], client: ApiClient, io: Out): Promise<number> {
  const { positionals } = parseArgs({ args, allowPositionals: true, options: {} });
  const [lane, ...extra] = positionals;
  const usage = command === 'pause' ? PAUSE_USAGE : RESUME_USAGE;
  if (!lane) throw new UsageError(`${command}: expected a lane\nusage: bullpen ${usage}`);
  if (extra.length > 0) throw new UsageError(`${command}: unexpected ${JSON.stringify(extra[0])}: one lane at a time\nusage: bullpen ${usage}`);
  const path = `/v1/lanes/${encodeURIComponent(lane)}/${command}`;
  let body: unknown;
  try {
    body = (await client.request<unknown>('POST', path)).body;
  } catch (err) {
    const hint = err instanceof ApiError ? advice(err) : undefined;
    if (hint && err instanceof ApiError) throw new ApiError(`${err.message} (${hint})`, err.status, err.exitCode, err.body, err.retryAfterSeconds);
    throw err;
  }
  if (!isLanePaused(body)) throw new ApiError(`unexpected answer to POST ${path}: ${JSON.stringify(body).slice(0, 200)}`, 200, 1);
  io.out(JSON.stringify(body, null, 2));
  io.err(
    body.paused
      ? `bullpen: lane ${body.lane} is paused: workers take no new jobs from it (for every tenant); \`bullpen resume ${body.lane}\` undoes it\n`
      : `bullpen: lane ${body.lane} is running: workers take its jobs again\n`,
  );
  return 0;
}
