// The API keys in force. Authentication reads them here rather than from the frozen config, so
// that SIGHUP can put the keys re-read from API_KEYS_FILE in their place (main.ts).
import { findApiKey, mayOperateLanes, type ApiKeyEntry, type BullpenConfig } from '@bullpen/core';

export interface Principal {
  readonly tenant: string;
  /** Lanes the key may use; undefined = all. */
  readonly lanes?: ReadonlySet<string>;
  /** Whether the tenant may pause and resume lanes and see their lane-wide counts (mayOperateLanes). */
  readonly operator: boolean;
}

type KeysConfig = Pick<BullpenConfig, 'apiKeys' | 'apiOperatorTenants' | 'authDisabled'>;

/**
 * One set of keys, never changed once built: a request is authenticated against the set in force
 * when it came in, and keeps the principal it got there however the keys change after.
 */
export class ApiKeySet {
  /**
   * Keys already proven valid, each with its principal: the digest and the constant-time
   * comparison run once per key and set, not per request. Only valid keys are kept, so the map
   * holds at most one entry per configured key whatever callers send.
   */
  private readonly verified = new Map<string, Principal>();

  constructor(
    readonly entries: readonly ApiKeyEntry[],
    private readonly config: Omit<KeysConfig, 'apiKeys'>,
  ) {}

  /** The principal of a presented key; undefined when no entry holds it. */
  principalOf(presented: string): Principal | undefined {
    let principal = this.verified.get(presented);
    if (principal) return principal;
    const entry = findApiKey(this.entries, presented);
    if (!entry) return undefined;
    const { apiOperatorTenants, authDisabled } = this.config;
    const operator = mayOperateLanes({ apiOperatorTenants, authDisabled, apiKeys: this.entries }, entry.tenant);
    principal = entry.lanes ? { tenant: entry.tenant, lanes: entry.lanes, operator } : { tenant: entry.tenant, operator };
    if (this.verified.size < this.entries.length) this.verified.set(presented, principal);
    return principal;
  }
}

export class ApiKeyTable {
  private keys: ApiKeySet;

  /** Starts with the keys read at start (config.apiKeys). */
  constructor(private readonly config: KeysConfig) {
    this.keys = new ApiKeySet(config.apiKeys, config);
  }

  /** The set to authenticate a request against, whole: read it once per request. */
  get current(): ApiKeySet {
    return this.keys;
  }

  /** Puts `entries` in force for the requests that come in from now on. */
  replace(entries: readonly ApiKeyEntry[]): void {
    this.keys = new ApiKeySet(entries, this.config);
  }
}
