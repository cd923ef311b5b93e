// Builds a real BullpenConfig for a test through loadConfig, with its own prefix and lanes.
import { readFileSync } from 'node:fs';
import IORedis from 'ioredis';
import { loadConfig, type BullpenConfig } from '@bullpen/core';
import { redisUrl, testPrefix } from './wait';

export interface TestConfigOptions {
  /** Lanes file contents (defaults to the shipped default lanes). */
  lanesFile?: unknown;
  env?: Record<string, string>;
  prefix?: string;
}

export function testConfig(options: TestConfigOptions = {}): BullpenConfig {
  const env: Record<string, string> = {
    REDIS_URL: redisUrl(),
    BULLPEN_PREFIX: options.prefix ?? testPrefix(),
    LOG_LEVEL: 'error',
    // A long-lived jest worker can pass the default 512 MiB; tests of the guard set their own.
    WORKER_MAX_RSS_MB: '8192',
    ...(options.lanesFile ? { LANES_FILE: '/virtual/lanes.json' } : {}),
    ...options.env,
  };
  return loadConfig(env, {
    readFile: (file) => {
      if (options.lanesFile && file === '/virtual/lanes.json') return JSON.stringify(options.lanesFile);
      return readFileSync(file, 'utf8');
    },
  });
}

/** The URL of a test config's Redis (tests run against single servers unless they say otherwise). */
export function standaloneUrl(config: BullpenConfig): string {
  if (config.redis.mode !== 'standalone') throw new Error(`expected a single-server config, got ${config.redis.mode}`);
  return config.redis.url;
}

/** Removes every key under a test's prefix. */
export async function cleanupPrefix(prefix: string, url = redisUrl()): Promise<void> {
  const redis = new IORedis(url, { maxRetriesPerRequest: 3 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}
