// Reading one environment variable of a given kind: every bad value is a ConfigError that names
// the variable and what was expected, never a silent fallback.
import { ConfigError } from './errors';

export type Env = Readonly<Record<string, string | undefined>>;

/** Throws a ConfigError naming `source` (a variable or a file's field). */
export function failConfig(source: string, expected: string, got?: string): never {
  throw new ConfigError(`${source}: expected ${expected}${got === undefined ? '' : `, got ${JSON.stringify(got)}`}`);
}

/** The integer variable `name` from `min` to `max`; `fallback` when unset. Throws a ConfigError naming it. */
export function intVar(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw.trim())) failConfig(name, `an integer from ${min} to ${max}`, raw);
  const value = Number(raw.trim());
  if (value < min || value > max) failConfig(name, `an integer from ${min} to ${max}`, raw);
  return value;
}

/** The decimal variable `name` from `min` to `max`; `fallback` when unset. Throws a ConfigError naming it. */
export function numberVar(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = /^\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw.trim()) : NaN;
  if (!(value >= min && value <= max)) failConfig(name, `a number from ${min} to ${max}`, raw);
  return value;
}

export function boolVar(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const v = raw.trim().toLowerCase();
  if (v === 'true' || v === '1' || v === 'yes') return true;
  if (v === 'false' || v === '0' || v === 'no') return false;
  return failConfig(name, 'true or false', raw);
}

/**
 * The comma-separated list `name`, entries trimmed and blank ones dropped, duplicates once;
 * undefined when unset or blank. A value of commas alone names nothing, which would quietly mean
 * something other than unset (no lane served, no key redacted, every name counted as `other`), so
 * it is refused, `expected` saying what the list holds.
 */
export function listVar(env: Env, name: string, expected: string): string[] | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const entries = [...new Set(raw.split(',').map((s) => s.trim()).filter(Boolean))];
  if (entries.length === 0) failConfig(name, `one or more comma-separated ${expected}, or unset`, raw);
  return entries;
}
