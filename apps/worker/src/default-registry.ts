// The registry a worker runs: the built-in handlers plus HANDLERS_DIR. Built the same way by the
// worker process and by each handler thread of an isolated lane.
import { ConfigError } from '@bullpen/core';
import { builtinHandlers } from './handlers';
import { loadHandlersDir } from './handlers-dir';
import { HandlerRegistry } from './registry';

export function buildRegistry(handlersDir: string | undefined): HandlerRegistry {
  const registry = new HandlerRegistry().registerAll(builtinHandlers(), 'the built-in handlers');
  if (handlersDir) {
    for (const { handler, file } of loadHandlersDir(handlersDir)) {
      try {
        registry.register(handler, file);
      } catch (err) {
        throw new ConfigError(`HANDLERS_DIR (${handlersDir}): ${(err as Error).message}`);
      }
    }
  }
  return registry;
}
