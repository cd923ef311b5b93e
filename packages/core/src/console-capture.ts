// BullMQ and ioredis print some warnings with console.warn and console.error (an evicting Redis,
// an old Redis version, an INFO the ACL refuses, an error event nobody listens to): plain text on
// stderr, once per connection, among the app's JSON lines. An app routes them through its logger
// instead, so that every line it writes is one JSON object, and a repeated one is counted rather
// than written again (repeat-limiter.ts).
import { format } from 'node:util';
import type { Logger } from './logger';
import { RepeatLimiter } from './repeat-limiter';

/** Routes console.warn and console.error to `logger` until the returned function is called. */
export function captureConsole(logger: Logger, options: { intervalMs?: number } = {}): () => void {
  const original = { warn: console.warn, error: console.error };
  const limiter = new RepeatLimiter({
    ...(options.intervalMs !== undefined ? { intervalMs: options.intervalMs } : {}),
    // Distinct messages (a handler naming each job it prints about) are all written, as they would
    // have been printed: only repeats are counted.
    beyondMaxKeys: 'admitted',
    onRepeats: (output, repeats) => logger.warn('console output repeated', { output, repeats, source: 'console' }),
  });
  const route = (level: 'warn' | 'error') => (...args: unknown[]) => {
    const message = format(...args);
    if (limiter.admit(message)) logger.log(level, message, { source: 'console' });
  };
  console.warn = route('warn');
  console.error = route('error');
  return () => {
    console.warn = original.warn;
    console.error = original.error;
    limiter.close();
  };
}
