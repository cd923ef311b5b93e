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

const TENANT = /^[A-Za-z0-9_-]{1,64}$/;

export function hashApiKey(key: string): Buffer {
  return createHash('sha256').update(key, 'utf8').digest();
}

export function parseApiKeys(text: string, source: string, knownLanes: ReadonlySet<string>): ApiKeyEntry[] {
  const entries: ApiKeyEntry[] = [];
  const items = text
    .split(/[,\n]/)
    .map((s) => s.trim())
    .filter((s) => s !== '' && !s.startsWith('#'));
  items.forEach((item, index) => {
    const where = `${source}: entry ${index + 1}`;
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
    entries.push(lanes ? { tenant, keyHash, lanes } : { tenant, keyHash });
  });
  return entries;
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
