import { removeDir } from './redis-server';

export default async function globalTeardown(): Promise<void> {
  const redis = globalThis.__BULLPEN_REDIS__;
  if (!redis) return;
  await redis.stop();
  removeDir(redis.dir);
  delete process.env.REDIS_URL;
}
