// Lua scripts live as files in packages/core/lua/, each opening with a header that lists its
// KEYS, ARGV and return value. The path is the same from src/ and dist/.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { RedisClient } from './redis';

export const LUA_DIR = path.resolve(__dirname, '../lua');

const cache = new Map<string, string>();

export function luaScript(name: string): string {
  let source = cache.get(name);
  if (source === undefined) {
    source = readFileSync(path.join(LUA_DIR, `${name}.lua`), 'utf8');
    cache.set(name, source);
  }
  return source;
}

/**
 * `redis` with the Lua script `script` as the custom command `name` (ioredis defineCommand, which
 * sends EVALSHA and loads the script when Redis lacks it). Defined once per client; later calls
 * return the client as it is.
 */
export function scriptCommand<C>(redis: RedisClient, name: string, script: string, numberOfKeys?: number): C & RedisClient {
  if (typeof (redis as unknown as Record<string, unknown>)[name] !== 'function') {
    redis.defineCommand(name, { lua: luaScript(script), ...(numberOfKeys === undefined ? {} : { numberOfKeys }) });
  }
  return redis as C & RedisClient;
}
