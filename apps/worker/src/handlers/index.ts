// The built-in handlers: for demos, tests and benchmarks.
import type { HttpDestinations } from '@bullpen/core';
import type { Handler } from '../handler';
import { cpuHandler } from './cpu';
import { failHandler } from './fail';
import { createHttpHandler, httpHandler } from './http';
import { noopHandler } from './noop';
import { sleepHandler } from './sleep';

export { cpuHandler, failHandler, httpHandler, noopHandler, sleepHandler };

/** @param destinations where the http handler may connect besides public addresses (HTTP_HANDLER_ALLOWED_HOSTS) */
export function builtinHandlers(destinations?: HttpDestinations): Handler[] {
  return [noopHandler, sleepHandler, cpuHandler, failHandler, destinations ? createHttpHandler(destinations) : httpHandler];
}
