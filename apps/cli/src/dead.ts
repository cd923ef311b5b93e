// `bullpen dead`: list a lane's dead letters page by page, redrive or purge them. Acting on every
// dead letter of the lane takes an explicit --all: an empty or forgotten --ids must never widen a
// purge to the whole lane.
import { parseArgs } from 'node:util';
import { ApiError, type ApiClient } from './api-client';
import { UsageError } from './config';
import { DEAD_IDS_MAX, deadAction, EXIT_DEAD_LETTERS_LEFT } from './dead-action';
import type { Out } from './io';

export const DEAD_USAGE = `dead <lane> [--limit N] [--cursor C] [--all]  list dead letters, newest first (--all: every page)
  dead <lane> --redrive|--purge --ids id1,id2   redrive or purge these dead letters (over ${DEAD_IDS_MAX}: in several calls)
  dead <lane> --redrive|--purge --all [--failed-before MS]
                                                ... every dead letter of yours in the lane that failed before it started
                                                (--failed-before: at or before MS, in ms since the epoch). A call the API
                                                ends early (overloaded, stopping) is sent again for the rest with the same
                                                bound; a command that ends before its answer (timeout, error) prints the
                                                command to run again, with --failed-before: neither redrives twice a job
                                                that died again meanwhile. Exit ${EXIT_DEAD_LETTERS_LEFT}: some were not done (e.g. held by another call)`;

/** The API's largest page of dead letters. */
const PAGE_MAX = 500;

interface Page {
  items: unknown[];
  nextCursor: string | null;
}

/** The ids of --ids: comma-separated, blanks ignored; none at all is a usage error. */
export function parseIds(text: string): string[] {
  const ids = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  if (ids.length === 0) throw new UsageError(`--ids: expected one or more comma-separated job ids, got ${JSON.stringify(text)}`);
  // The API refuses an id twice in one call; split over several calls, it would be acted on twice.
  const seen = new Set<string>();
  for (const id of ids) {
    if (seen.has(id)) throw new UsageError(`--ids: ${JSON.stringify(id)} is given twice`);
    seen.add(id);
  }
  return ids;
}

/** --failed-before: a time in ms since the epoch, as the API takes it (an integer of at least 0). */
export function parseFailedBefore(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n)) {
    throw new UsageError(`--failed-before: expected a time in ms since the epoch (an integer of at least 0, as a redrive or purge of all prints it), got ${JSON.stringify(text)}`);
  }
  return n;
}

function parseLimit(text: string): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n < 1 || n > PAGE_MAX) throw new UsageError(`--limit: expected an integer from 1 to ${PAGE_MAX}, got ${JSON.stringify(text)}`);
  return n;
}

function isPage(body: unknown): body is Page {
  const b = body as Partial<Page> | null;
  return typeof b === 'object' && b !== null && Array.isArray(b.items) && (typeof b.nextCursor === 'string' || b.nextCursor === null);
}

export async function dead(args: string[], client: ApiClient, io: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      redrive: { type: 'boolean' },
      purge: { type: 'boolean' },
      ids: { type: 'string' },
      all: { type: 'boolean' },
      limit: { type: 'string' },
      cursor: { type: 'string' },
      'failed-before': { type: 'string' },
    },
  });
  const [lane, ...extra] = positionals;
  if (!lane) throw new UsageError('dead: expected a lane');
  if (extra.length > 0) throw new UsageError(`dead: unexpected ${JSON.stringify(extra[0])} (ids go in --ids a,b)`);
  const base = `/v1/lanes/${encodeURIComponent(lane)}/dead`;
  const ids = values.ids === undefined ? undefined : parseIds(values.ids);

  if (values.redrive || values.purge) {
    const action = values.redrive ? '--redrive' : '--purge';
    if (values.redrive && values.purge) throw new UsageError('dead: --redrive or --purge, not both');
    if (values.limit !== undefined || values.cursor !== undefined) throw new UsageError(`dead ${action}: --limit and --cursor are for listing`);
    if (ids && values.all) throw new UsageError(`dead ${action}: --ids or --all, not both`);
    if (!ids && !values.all) {
      throw new UsageError(`dead ${action}: name the dead letters with --ids id1,id2, or pass --all for every dead letter of yours in lane ${lane}`);
    }
    if (ids && values['failed-before'] !== undefined) throw new UsageError(`dead ${action}: --failed-before bounds --all, not --ids`);
    const failedBefore = values['failed-before'] === undefined ? undefined : parseFailedBefore(values['failed-before']);
    return deadAction({ action: values.redrive ? 'redrive' : 'purge', lane, ids, failedBefore }, client, io);
  }
  if (values['failed-before'] !== undefined) throw new UsageError('dead: --failed-before bounds a --redrive or --purge of --all');

  if (ids) throw new UsageError('dead: --ids selects dead letters to --redrive or --purge');
  const limit = values.limit === undefined ? undefined : parseLimit(values.limit);
  const page = async (cursor: string | undefined): Promise<Page> => {
    const query = new URLSearchParams();
    if (limit !== undefined || values.all) query.set('limit', String(limit ?? PAGE_MAX));
    if (cursor !== undefined) query.set('cursor', cursor);
    const qs = query.toString();
    const res = await client.request<unknown>('GET', qs ? `${base}?${qs}` : base);
    if (!isPage(res.body)) throw new ApiError(`unexpected answer to GET ${base}: ${JSON.stringify(res.body).slice(0, 200)}`, res.status, 1);
    return res.body;
  };
  if (!values.all) {
    const first = await page(values.cursor);
    io.out(JSON.stringify(first, null, 2));
    if (first.nextCursor !== null) io.err(`bullpen: more dead letters: pass --cursor=${first.nextCursor} for the next page, or --all for every page\n`);
    return 0;
  }
  const items: unknown[] = [];
  let cursor = values.cursor;
  for (;;) {
    const next = await page(cursor);
    items.push(...next.items);
    if (next.nextCursor === null) break;
    cursor = next.nextCursor;
  }
  io.out(JSON.stringify({ items, nextCursor: null }, null, 2));
  return 0;
}
