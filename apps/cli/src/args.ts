// Parsing of option values shared by the commands; a bad value is a UsageError naming the option.
import { UsageError } from './config';

const DURATION_UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `30m`, `24h`, `7d`, `500ms`, `0s` as milliseconds. */
export function parseDuration(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (!m) throw new UsageError(`${flag}: expected a duration like 30s, 30m, 24h or 7d, got ${JSON.stringify(text)}`);
  return Number(m[1]) * DURATION_UNITS[m[2] as keyof typeof DURATION_UNITS];
}

export function parseTime(flag: string, text: string): number {
  const t = Date.parse(text);
  if (!Number.isFinite(t)) throw new UsageError(`${flag}: expected an ISO timestamp, got ${JSON.stringify(text)}`);
  return t;
}

/** A whole number from `min` to `max`. */
export function parseInteger(flag: string, text: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n < min || n > max) throw new UsageError(`${flag}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(text)}`);
  return n;
}

const SIZE_UNITS = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 * 1024, mb: 1024 * 1024, mib: 1024 * 1024 } as const;

/** `512k`, `1m`, `200000` as bytes, from `min` to `max`. */
export function parseBytes(flag: string, text: string, min: number, max: number): number {
  const m = /^(\d+)\s*([a-z]*)$/i.exec(text.trim());
  const unit = m ? SIZE_UNITS[(m[2] ?? '').toLowerCase() as keyof typeof SIZE_UNITS] : undefined;
  const n = m && unit !== undefined ? Number(m[1]) * unit : Number.NaN;
  if (!(n >= min && n <= max)) throw new UsageError(`${flag}: expected a size from ${min} bytes to ${max / 1024 / 1024} MiB such as 512k or 1m, got ${JSON.stringify(text)}`);
  return n;
}
