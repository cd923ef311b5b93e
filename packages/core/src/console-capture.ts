// BullMQ and ioredis print some warnings with console.warn and console.error (an evicting Redis,
// an old Redis version, an INFO the ACL refuses, an error event nobody listens to): plain text on
// stderr, once per connection, among the app's JSON lines. An app routes them through its logger
// instead, so that every line it writes is one JSON object, and a repeated one is counted rather
// than written again (repeat-limiter.ts). What a handler prints in a worker thread reaches its
// process's console only by a message to the main thread, which logs it with a ConsoleRouter.
import { format } from 'node:util';
import type { Logger } from './logger';
import { RepeatLimiter } from './repeat-limiter';

export type ConsoleLevel = 'warn' | 'error';

export interface ConsoleRouterOptions {
  /** The window in which a repeated message is counted rather than logged; default 30000 ms. */
  intervalMs?: number;
}

/** Logs console output through a logger with `source: "console"`, counting repeats of a message. */
export class ConsoleRouter {
  private readonly limiter: RepeatLimiter;

  constructor(
    private readonly logger: Logger,
    options: ConsoleRouterOptions = {},
  ) {
    this.limiter = new RepeatLimiter({
      ...(options.intervalMs !== undefined ? { intervalMs: options.intervalMs } : {}),
      // Distinct messages (a handler naming each job it prints about) are all written, as they
      // would have been printed: only repeats are counted.
      beyondMaxKeys: 'admitted',
      onRepeats: (output, repeats) => logger.warn('console output repeated', { output, repeats, source: 'console' }),
    });
  }

  /** Logs `message` (already formatted) with `fields`, unless it repeats one logged in the current window. */
  route(level: ConsoleLevel, message: string, fields: Record<string, unknown> = {}): void {
    if (this.limiter.admit(message)) this.logger.log(level, message, { ...fields, source: 'console' });
  }

  /** Reports the repeats still counted and stops the limiter's timer. */
  close(): void {
    this.limiter.close();
  }
}

/** Routes console.warn and console.error to `logger` until the returned function is called. */
export function captureConsole(logger: Logger, options: ConsoleRouterOptions = {}): () => void {
  const original = { warn: console.warn, error: console.error };
  const router = new ConsoleRouter(logger, options);
  const route = (level: ConsoleLevel) => (...args: unknown[]) => router.route(level, format(...args));
  console.warn = route('warn');
  console.error = route('error');
  return () => {
    console.warn = original.warn;
    console.error = original.error;
    router.close();
  };
}
