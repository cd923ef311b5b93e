// One Redis for the whole run (each test isolates itself with its own key prefix), unless
// REDIS_URL points at one already.
import { startRedis, type RedisProcess } from './redis-server';

declare global {
  // eslint-disable-next-line no-var
  var __BULLPEN_REDIS__: RedisProcess | undefined;
}

export default async function globalSetup(): Promise<void> {
  if (process.env.REDIS_URL) return;
  const redis = await startRedis();
  globalThis.__BULLPEN_REDIS__ = redis;
  process.env.REDIS_URL = redis.url;
  process.env.BULLPEN_TEST_OWNS_REDIS = '1';
}
