// SIGHUP in the apps that use the API keys (api, exporter): API_KEYS_FILE is read again by the
// rules it was read with at start (reloadApiKeys, the same for both apps), and the new keys take effect; a file that fails them leaves
// the keys in force as they were. Either way one log line says what happened, never a key (and a
// warning follows new keys that include the public demo key).
import type { ApiKeyEntry } from './api-keys';
import { reloadApiKeys, type BullpenConfig, type LoadConfigOptions } from './config';
import { warnOfDemoKey } from './demo-key';
import type { Logger } from './logger';

export interface ApiKeysReload {
  config: Pick<BullpenConfig, 'apiKeysFile' | 'laneNames' | 'apiOperatorTenants' | 'authDisabled'>;
  logger: Logger;
  /**
   * Puts the new keys in force; returns fields for the log line. May throw (a ConfigError saying
   * why) to refuse keys that parse but that this app cannot use; the old keys then stay.
   */
  apply(keys: readonly ApiKeyEntry[]): Record<string, unknown> | void;
  readFile?: LoadConfigOptions['readFile'];
}

/** Whether new keys were put in force. */
export function reloadApiKeysFile({ config, logger, apply, readFile }: ApiKeysReload): boolean {
  const file = config.apiKeysFile;
  if (file === undefined) {
    logger.info('SIGHUP: nothing to reload: API_KEYS_FILE is not set, and keys in API_KEYS are read again only by a restart');
    return false;
  }
  try {
    const keys = reloadApiKeys(config, readFile ? { readFile } : {}) ?? [];
    const fields = apply(keys) ?? {};
    logger.info('api keys reloaded', { file, keys: keys.length, tenants: new Set(keys.map((k) => k.tenant)).size, ...fields });
    warnOfDemoKey(keys, logger);
    return true;
  } catch (err) {
    logger.error('api keys not reloaded: keeping the keys in force', { file, error: (err as Error).message });
    return false;
  }
}
