// Redis's maxmemory-policy, which must be `noeviction` for bullpen. Under any other policy Redis
// deletes keys to make room at maxmemory (under a volatile-* policy only keys with a TTL, such as
// job locks): jobs the API acknowledged vanish from their wait lists, or keep their id with no
// name, data or tenant, and nothing in Redis says so. Each process says it in its log, naming the
// fix, when it first finds such a policy and whenever a later reading finds it changed.
import type { Logger } from './logger';
import { readMemory, serverAddress } from './redis-memory';
import { serversOf, type RedisClient } from './redis';

/** The policy bullpen needs: at maxmemory Redis refuses writes instead of deleting keys. */
export const REQUIRED_MAXMEMORY_POLICY = 'noeviction';

/**
 * Whether Redis deletes keys to make room under `policy`. A policy INFO did not show ('unknown')
 * is not taken for one.
 */
export function isEvictingPolicy(policy: string): boolean {
  return policy !== REQUIRED_MAXMEMORY_POLICY && policy !== 'unknown';
}

/** What an evicting policy means for bullpen, and the fix. */
export function evictingPolicyMessage(policy: string): string {
  return (
    `Redis's maxmemory-policy is ${policy}, not ${REQUIRED_MAXMEMORY_POLICY}: at maxmemory Redis deletes keys ` +
    'to make room, and bullpen may lose jobs it has acknowledged (their place in the queue, their data). ' +
    `Run CONFIG SET maxmemory-policy ${REQUIRED_MAXMEMORY_POLICY} on the Redis server (and set it in its config file)`
  );
}

/**
 * Remembers each server's policy as read, and logs an error when a server is first found with an
 * evicting policy or found with another policy than at its last reading. Readings that find
 * nothing new log nothing, however often they are taken.
 */
export class EvictionPolicyWatch {
  private readonly policies = new Map<string, string>();

  /** @param logger where a policy that evicts is said; none for a watch that only remembers */
  constructor(private readonly logger?: Logger) {}

  /** Records a reading of the policy of the server at `address`. */
  observe(address: string, policy: string): void {
    const before = this.policies.get(address);
    this.policies.set(address, policy);
    if (before === policy) return;
    if (isEvictingPolicy(policy)) {
      this.logger?.error('redis may evict jobs', { redis: address, maxmemory_policy: policy, error: evictingPolicyMessage(policy) });
    } else if (before !== undefined && isEvictingPolicy(before)) {
      this.logger?.info('redis no longer evicts keys', { redis: address, maxmemory_policy: policy, was: before });
    }
  }

  /**
   * The evicting policy in force at `address`, or when no address is given at any server read;
   * undefined when none is known to evict.
   */
  evictingPolicy(address?: string): string | undefined {
    if (address !== undefined) {
      const policy = this.policies.get(address);
      return policy !== undefined && isEvictingPolicy(policy) ? policy : undefined;
    }
    for (const policy of this.policies.values()) if (isEvictingPolicy(policy)) return policy;
    return undefined;
  }

  /**
   * Reads the policy of every primary of `client` (INFO memory) into this watch; a failed reading
   * is left to the connection's own error handling.
   */
  async read(client: RedisClient): Promise<void> {
    const servers = serversOf(client);
    const memories = await Promise.all(servers.map((server) => readMemory(server).catch(() => undefined)));
    servers.forEach((server, i) => {
      const memory = memories[i];
      if (memory) this.observe(serverAddress(server), memory.policy);
    });
  }

  /**
   * Reads `client`'s servers each time it is ready (now if it is), so that a process started on an
   * evicting Redis, or reconnected to one, says so. Returns a function that stops it.
   */
  watchConnection(client: RedisClient): () => void {
    const onReady = () => void this.read(client);
    client.on('ready', onReady);
    if (client.status === 'ready') onReady();
    return () => client.off('ready', onReady);
  }
}
