// Loads user handlers from HANDLERS_DIR: every .js/.cjs file directly in the folder is required and
// each handler it exports (the default export, module.exports itself, or any named export made by
// defineHandler) is returned. Subfolders are not read, so helpers can live there.
//
// The folder may be anywhere (a volume mounted at /handlers in a container): a package its files
// require that cannot be found from where they are ('@bullpen/worker', 'zod') is looked up from
// the worker's own location, so that they get the packages the worker runs with.
import { readdirSync, realpathSync } from 'node:fs';
import Module from 'node:module';
import path from 'node:path';
import { ConfigError } from '@bullpen/core';
import { esModuleByLoadFailure, esModuleByPackageType } from './es-module-check';
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
  resolveFromWorker(dir);
  const loaded: LoadedHandler[] = [];
  for (const name of entries) {
    const file = path.join(dir, name);
    const esModule = esModuleByPackageType(file);
    if (esModule) throw notLoaded(dir, name, esModule);
    let exported: unknown;
    try {
      exported = require(file);
    } catch (err) {
      const why = esModuleByLoadFailure(file, err);
      if (why) throw notLoaded(dir, name, why, err);
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

function notLoaded(dir: string, name: string, why: string, err?: unknown): ConfigError {
  const failure = err === undefined ? '' : ` (loading it failed: ${(err as Error).message})`;
  return new ConfigError(
    `HANDLERS_DIR (${dir}): file ${name} is an ES module (${why}), and ES modules are not loaded: build it to CommonJS (require and module.exports) first${failure}`,
  );
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

type ResolveFilename = (request: string, parent: { filename?: string | null } | null | undefined, isMain: boolean, options?: unknown) => string;
const moduleInternals = Module as unknown as { _resolveFilename: ResolveFilename };
/** Folders (real paths, with a trailing separator) whose files may fall back on the worker's packages. */
const handlerFolders = new Set<string>();

/**
 * Lets the files under `dir` (helpers in subfolders too) require packages the worker has when their
 * own folders do not: a bare specifier that fails to resolve from a file there is resolved again
 * from this module's folder, as Node would for the worker itself. Files elsewhere are untouched,
 * and a package the handler folder has of its own still wins.
 */
function resolveFromWorker(dir: string): void {
  let real: string;
  try {
    real = realpathSync(dir);
  } catch {
    return;
  }
  const first = handlerFolders.size === 0;
  handlerFolders.add(real.endsWith(path.sep) ? real : real + path.sep);
  if (!first) return;
  const resolve = moduleInternals._resolveFilename;
  moduleInternals._resolveFilename = function resolveFilename(this: unknown, request, parent, isMain, options) {
    try {
      return resolve.call(this, request, parent, isMain, options);
    } catch (err) {
      const from = parent?.filename;
      const bare = !request.startsWith('.') && !path.isAbsolute(request);
      const inHandlers = typeof from === 'string' && [...handlerFolders].some((folder) => from.startsWith(folder));
      if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND' || !bare || !inHandlers) throw err;
      try {
        return resolve.call(this, request, parent, isMain, { paths: [__dirname] });
      } catch {
        throw err;
      }
    }
  };
}
