// What the worker process does with an error nothing caught: most often a promise a handler
// rejected and never awaited. Node's default ends the process with a bare stack trace on stderr,
// stalling every other job it runs (past a lane's maxStalls, dead-lettering an innocent one as
// stalled). A stray rejection is logged and the process goes on: the attempt that made it has
// already ended or will end by itself. An uncaught exception may have left any state half-changed,
// so it is logged and the process then shuts down as on SIGTERM, letting its active jobs finish.
import { describeThrown, type Logger } from '@bullpen/core';

export interface ProcessFaultOptions {
  logger: Logger;
  /** Handlers running now, by lane (lanes with none left out); read only when a fault is logged. */
  activeHandlers(): Record<string, number>;
  /** Called for each unhandled rejection, after it was logged. */
  onUnhandledRejection?(): void;
  /** Called once for the first uncaught exception, after it was logged: stop the process. */
  onUncaughtException(err: unknown): void;
}

/** Listens for stray rejections and uncaught exceptions; returns the function that stops listening. */
export function watchProcessFaults(options: ProcessFaultOptions): () => void {
  const { logger } = options;
  let stopping = false;
  const onRejection = (reason: unknown): void => {
    logger.error('unhandled promise rejection: a promise was rejected and nothing awaited it (most likely in a handler); the worker goes on', {
      ...describe(reason),
      active_handlers: activeHandlers(options),
    });
    options.onUnhandledRejection?.();
  };
  const onException = (err: unknown): void => {
    logger.error(
      stopping
        ? 'uncaught exception during shutdown'
        : 'uncaught exception: the worker stops taking jobs and shuts down, letting its active jobs finish',
      { ...describe(err), active_handlers: activeHandlers(options) },
    );
    if (stopping) return;
    stopping = true;
    options.onUncaughtException(err);
  };
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
  };
}

function describe(value: unknown): { error: string; error_name?: string; stack?: string } {
  const error = describeThrown(value);
  if (!(value instanceof Error)) return { error };
  return value.stack ? { error, error_name: value.name, stack: value.stack } : { error, error_name: value.name };
}

/** What ran when the fault came, never a reason to fail logging it. */
function activeHandlers(options: ProcessFaultOptions): Record<string, number> | undefined {
  try {
    return options.activeHandlers();
  } catch {
    return undefined;
  }
}
