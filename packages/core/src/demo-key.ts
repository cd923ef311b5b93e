// The README's demo key, what `npm run stack` and the compose file use when no keys are given so
// that a first try works. It is public: a deployment that accepts it accepts anyone, so the apps
// that hold keys (api, exporter) say so at start and after each reload of API_KEYS_FILE.
import { hashApiKey, type ApiKeyEntry } from './api-keys';
import type { Logger } from './logger';

export const DEMO_API_KEY = 'bullpen-demo-key';
const DEMO_KEY_HASH = hashApiKey(DEMO_API_KEY);

/** The tenants whose key is the demo key, given as is or as its sha256= hash. */
export function demoKeyTenants(keys: readonly ApiKeyEntry[]): string[] {
  return keys.filter((entry) => entry.keyHash.equals(DEMO_KEY_HASH)).map((entry) => entry.tenant);
}

/** Logs a warning naming the tenants that hold the demo key, if any. */
export function warnOfDemoKey(keys: readonly ApiKeyEntry[], logger: Logger): void {
  const tenants = demoKeyTenants(keys);
  if (tenants.length === 0) return;
  logger.warn(`an API key is the public demo key "${DEMO_API_KEY}": anyone who has read the README can call the API with it; configure keys of your own (API_KEYS or API_KEYS_FILE)`, {
    tenants,
  });
}
