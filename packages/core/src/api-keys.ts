// API keys: `tenant:key` or `tenant:key:lane1|lane2`, where key may be `sha256=<hex>` so that
// configuration holds only hashes. Keys are compared as SHA-256 digests in constant time.
import { createHash, timingSafeEqual } from 'node:crypto';
import { ConfigError } from './errors';

export interface ApiKeyEntry {
  readonly tenant: string;
  /** SHA-256 of the key. */
  readonly keyHash: Buffer;
  /** Lanes this key may use; undefined = all lanes. */
  readonly lanes?: ReadonlySet<string>;
}

/** How the entries are laid out: API_KEYS is a comma-separated list, API_KEYS_FILE has lines. */
export type ApiKeysLayout = 'list' | 'lines';

const TENANT = /^[A-Za-z0-9_-]{1,64}$/;
/** What a Bearer token can hold and every HTTP client sends unchanged. */
const VISIBLE_ASCII = /^[\x21-\x7e]+$/;

export function hashApiKey(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

/**
 * Parses API_KEYS (`layout` "list": entries separated by commas, named "entry N" in errors) or the
 * text of API_KEYS_FILE (`layout` "lines": a line starting with `#` is a comment, and is dropped
 * whole before its commas are looked at, so a commented-out key stays off; other lines hold one
 * entry, or several separated by commas; named "line N" in errors). `source` names the variable.
 * A key listed twice is refused: the second entry would either hand one tenant's key to another or
 * silently lose its lane binding. Errors never show a key.
 */
export function parseApiKeys(text: string, source: string, knownLanes: ReadonlySet<string>, layout: ApiKeysLayout): ApiKeyEntry[] {
  const entries: ApiKeyEntry[] = [];
  const seen = new Map<string, { label: string; tenant: string }>();
  for (const { item, label } of layout === 'lines' ? fileItems(text) : listItems(text)) {
    const entry = parseEntry(item, `${source}: ${label}`, knownLanes);
    const hash = entry.keyHash.toString('hex');
    const first = seen.get(hash);
    if (first) {
      throw new ConfigError(
        `${source}: ${label} (tenant ${entry.tenant}) has the same key as ${first.label} (tenant ${first.tenant}); ` +
          'expected each key once, with all its lanes in one entry',
      );
    }
    seen.set(hash, { label, tenant: entry.tenant });
    entries.push(entry);
  }
  return entries;
}

interface Item {
  readonly item: string;
  /** `entry N` or `line N`, for errors. */
  readonly label: string;
}

function listItems(text: string): Item[] {
  return text
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((item, index) => ({ item, label: `entry ${index + 1}` }));
}

function fileItems(text: string): Item[] {
  const items: Item[] = [];
  text.split(/\r?\n/).forEach((rawLine, lineIndex) => {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) return;
    const onLine = line.split(',').map((s) => s.trim()).filter((s) => s !== '');
    onLine.forEach((item, index) => {
      items.push({ item, label: `line ${lineIndex + 1}${onLine.length > 1 ? `, entry ${index + 1}` : ''}` });
    });
  });
  return items;
}

function parseEntry(item: string, where: string, knownLanes: ReadonlySet<string>): ApiKeyEntry {
  const parts = item.split(':');
  if (parts.length < 2 || parts.length > 3) {
    throw new ConfigError(`${where}: expected tenant:key or tenant:key:lane1|lane2`);
  }
  const [tenant = '', key = '', laneList] = parts;
  if (!TENANT.test(tenant)) throw new ConfigError(`${where}: field "tenant": expected letters, digits, _ or - (1-64 chars)`);
  let keyHash: Buffer;
  if (key.startsWith('sha256=')) {
    const hex = key.slice('sha256='.length);
    if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new ConfigError(`${where}: field "key": expected sha256= followed by 64 hex digits`);
    keyHash = Buffer.from(hex, 'hex');
  } else {
    if (key.length < 8) throw new ConfigError(`${where}: field "key": expected at least 8 characters`);
    // A key a client cannot put in an Authorization header would start the API, then fail every
    // request (Node's fetch refuses such a header outright).
    if (!VISIBLE_ASCII.test(key)) {
      throw new ConfigError(
        `${where}: field "key": expected visible ASCII characters only (no spaces, tabs or characters outside ASCII), which is all an Authorization header carries`,
      );
    }
    keyHash = hashApiKey(key);
  }
  let lanes: Set<string> | undefined;
  if (laneList !== undefined) {
    lanes = new Set(laneList.split('|').map((s) => s.trim()).filter(Boolean));
    if (lanes.size === 0) throw new ConfigError(`${where}: field "lanes": expected at least one lane after the second colon`);
    for (const lane of lanes) {
      if (!knownLanes.has(lane)) throw new ConfigError(`${where}: field "lanes": unknown lane ${JSON.stringify(lane)}`);
    }
  }
  return lanes ? { tenant, keyHash, lanes } : { tenant, keyHash };
}

/** Finds the entry for a presented key, comparing against every entry in constant time. */
export function findApiKey(entries: readonly ApiKeyEntry[], presented: string): ApiKeyEntry | undefined {
  const digest = hashApiKey(presented);
  let found: ApiKeyEntry | undefined;
  for (const entry of entries) {
    if (timingSafeEqual(entry.keyHash, digest) && found === undefined) found = entry;
  }
  return found;
}
