// The worker process: read config, build the handler registry (built-ins plus HANDLERS_DIR), run
// the lanes, and shut down gracefully on SIGTERM/SIGINT.
import { ConfigError, createLogger, loadConfig, type BullpenConfig } from '@bullpen/core';
import { buildRegistry } from './default-registry';
import type { HandlerRegistry } from './registry';
import { WorkerRuntime } from './runtime';

async function main(): Promise<void> {
  let config: BullpenConfig;
  let registry: HandlerRegistry;
  try {
    config = loadConfig();
    registry = buildRegistry(config.handlersDir);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`bullpen worker: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const logger = createLogger('worker', config.logLevel);
  const runtime = new WorkerRuntime({ config, logger, registry });

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn('second signal during shutdown; exiting now', { signal });
      process.exit(1);
    }
    stopping = true;
    logger.info('shutting down: no new jobs; waiting for active ones', { signal, graceMs: config.shutdownGraceMs });
    runtime
      .close(config.shutdownGraceMs)
      .then(() => {
        logger.info('worker stopped');
        process.exit(0);
      })
      .catch((err: unknown) => {
        logger.error('shutdown failed', { error: (err as Error).message });
        process.exit(1);
      });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  await runtime.start();
  logger.info('worker started', {
    workerId: config.workerId,
    lanes: runtime.lanes,
    maxHandlersPerProcess: config.maxHandlersPerProcess,
    handlers: registry.names(),
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`bullpen worker: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
