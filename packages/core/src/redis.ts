// Redis connections by role. Workers and event readers must wait out outages (BullMQ requires
// maxRetriesPerRequest: null); the API's producer connection fails fast so that a request gets
// a 503 instead of hanging while Redis is away.
import IORedis, { type RedisOptions } from 'ioredis';

export type ConnectionRole = 'producer' | 'worker' | 'events';

/** How long a producer waits for a connection before giving up; reconnects continue behind it. */
export const PRODUCER_CONNECT_TIMEOUT_MS = 1000;

export function redisOptions(role: ConnectionRole, name?: string): RedisOptions {
  const base: RedisOptions = {
    lazyConnect: false,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
    ...(name ? { connectionName: name } : {}),
  };
  if (role === 'producer') {
    return {
      ...base,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: PRODUCER_CONNECT_TIMEOUT_MS,
      commandTimeout: PRODUCER_CONNECT_TIMEOUT_MS,
      enableReadyCheck: true,
      // A dropped connection should not replay half-acknowledged writes on reconnect.
      autoResendUnfulfilledCommands: false,
    };
  }
  return { ...base, maxRetriesPerRequest: null, enableReadyCheck: true };
}

export function createRedis(url: string, role: ConnectionRole, name?: string): IORedis {
  const client = new IORedis(url, redisOptions(role, name));
  // Errors surface on the commands that fail; an unhandled 'error' event must not crash a process.
  client.on('error', () => undefined);
  return client;
}
