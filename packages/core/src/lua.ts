// Lua scripts live as files in packages/core/lua/, each opening with a header that lists its
// KEYS, ARGV and return value. The path is the same from src/ and dist/.
import { readFileSync } from 'node:fs';
import path from 'node:path';

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
