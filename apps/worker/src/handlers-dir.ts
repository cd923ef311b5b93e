// Loads user handlers from HANDLERS_DIR: every .js/.cjs file directly in the folder is required and
// each handler it exports (the default export, module.exports itself, or any named export made by
// defineHandler) is returned. Subfolders are not read, so helpers can live there.
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { ConfigError } from '@bullpen/core';
import { isHandler, type Handler } from './handler';

export interface LoadedHandler {
  handler: Handler;
  file: string;
}

const EXTENSIONS = new Set(['.js', '.cjs']);

export function loadHandlersDir(dir: string): LoadedHandler[] {
  let entries: string[];
  try {
    entries = readdirSync(dir, { withFileTypes: true })
      .filter((entry) => entry.isFile() && EXTENSIONS.has(path.extname(entry.name)))
      .map((entry) => entry.name)
      .sort();
  } catch (err) {
    throw new ConfigError(`HANDLERS_DIR (${dir}): expected a readable folder (${(err as Error).message})`);
  }
  const loaded: LoadedHandler[] = [];
  for (const name of entries) {
    const file = path.join(dir, name);
    let exported: unknown;
    try {
      exported = require(file);
    } catch (err) {
      throw new ConfigError(`HANDLERS_DIR (${dir}): file ${name} failed to load: ${(err as Error).message}`);
    }
    const handlers = handlersOf(exported);
    if (handlers.length === 0) {
      throw new ConfigError(
        `HANDLERS_DIR (${dir}): file ${name}: expected it to export a handler made by defineHandler (default or named export)`,
      );
    }
    for (const handler of handlers) loaded.push({ handler, file });
  }
  return loaded;
}

function handlersOf(exported: unknown): Handler[] {
  if (isHandler(exported)) return [exported];
  if (typeof exported !== 'object' || exported === null) return [];
  const found = new Set<Handler>();
  for (const value of Object.values(exported as Record<string, unknown>)) {
    if (isHandler(value)) found.add(value);
  }
  return [...found];
}
