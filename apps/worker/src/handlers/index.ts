// The built-in handlers: for demos, tests and benchmarks.
import type { Handler } from '../handler';
import { cpuHandler } from './cpu';
import { failHandler } from './fail';
import { httpHandler } from './http';
import { noopHandler } from './noop';
import { sleepHandler } from './sleep';

export { cpuHandler, failHandler, httpHandler, noopHandler, sleepHandler };

export function builtinHandlers(): Handler[] {
  return [noopHandler, sleepHandler, cpuHandler, failHandler, httpHandler];
}
