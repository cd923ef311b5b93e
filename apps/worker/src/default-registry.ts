// The registry a worker runs: the built-in handlers plus HANDLERS_DIR. Built the same way by the
// worker process and by each handler thread of an isolated lane.
import { ConfigError, HttpDestinations } from '@bullpen/core';
import { builtinHandlers } from './handlers';
import { loadHandlersDir } from './handlers-dir';
import { HandlerRegistry } from './registry';

/** @param httpAllowedHosts HTTP_HANDLER_ALLOWED_HOSTS: what the http handler may call besides public addresses */
export function buildRegistry(handlersDir: string | undefined, httpAllowedHosts: readonly string[] = []): HandlerRegistry {
  const registry = new HandlerRegistry().registerAll(builtinHandlers(new HttpDestinations(httpAllowedHosts)), 'the built-in handlers');
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
