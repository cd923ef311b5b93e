// The worker process: read config, start tracing, build the handler registry (built-ins plus
// HANDLERS_DIR), serve /metrics and /healthz, run the lanes, and shut down gracefully on
// SIGTERM/SIGINT, or after an uncaught exception (see process-faults.ts). SIGHUP, which reloads
// the API keys of the API and the exporter, is logged and otherwise ignored.
// First: the modules below take seconds to load, and a signal meanwhile must not be lost or fatal.
import { handOver } from '@bullpen/core/startup-signals';
import {
  ConfigError,
  accessRefusalOf,
  captureConsole,
  createLogger,
  describeConfig,
  explainAccessRefusal,
  listenFailure,
  loadConfig,
  startTracing,
  type BullpenConfig,
} from '@bullpen/core';
import { buildRegistry } from './default-registry';
import { WORKER_SERVICE_NAME } from './lane-worker';
import { MetricsServer } from './metrics-server';
import { watchProcessFaults } from './process-faults';
import type { HandlerRegistry } from './registry';
import { WorkerRuntime } from './runtime';
import { WorkerMetrics } from './worker-metrics';

async function main(): Promise<void> {
  let config: BullpenConfig;
  let registry: HandlerRegistry;
  try {
    config = loadConfig();
  } catch (err) {
    exitOnConfigError(err);
  }
  const logger = createLogger('worker', config.logLevel);
  // BullMQ's and ioredis's own warnings become JSON lines too, each repeat counted once.
  captureConsole(logger);
  // A `kill -HUP` meant for all of bullpen's apps must not stop the worker, nor drop its jobs.
  const onHangUp = () => logger.info('SIGHUP: the worker has nothing to reload (it reads its configuration at start); carrying on');
  process.on('SIGHUP', onHangUp);
  if (handOver('SIGHUP')) onHangUp();
  // From here on, before handler modules load: one of them may leave a rejection nothing handles.
  // Until the worker is built, a fault is logged only, and an uncaught exception exits at once.
  let built: { runtime: WorkerRuntime; metrics: WorkerMetrics; stopAfterFault(): void } | undefined;
  watchProcessFaults({
    logger,
    activeHandlers: () => {
      const active: Record<string, number> = {};
      for (const [lane, stats] of Object.entries(built?.runtime.stats().lanes ?? {})) if (stats.activeHandlers > 0) active[lane] = stats.activeHandlers;
      return active;
    },
    onUnhandledRejection: () => built?.metrics.countUnhandledRejection(),
    onUncaughtException: () => (built ? built.stopAfterFault() : process.exit(1)),
  });
  // Before anything else is loaded, handler modules included.
  const tracing = startTracing(config.tracing, WORKER_SERVICE_NAME, logger);
  try {
    registry = buildRegistry(config.handlersDir, config.httpHandlerAllowedHosts);
  } catch (err) {
    exitOnConfigError(err);
  }
  logger.info('starting', { config: describeConfig(config), tracing: tracing.enabled });
  const runtime = new WorkerRuntime({ config, logger, registry });
  const metrics = new WorkerMetrics(runtime);
  const server = new MetricsServer(metrics.registry, () => ({ ok: runtime.status === 'running', status: runtime.status }));

  let stopping = false;
  let exitCode = 0;
  /** Stops intake, lets active jobs finish within the grace period, and exits (non-zero after a fault). */
  const shutdown = (cause: { signal: NodeJS.Signals } | { cause: string }, code: number) => {
    exitCode = Math.max(exitCode, code);
    if (stopping) {
      if ('signal' in cause) {
        logger.warn('second signal during shutdown; exiting now', cause);
        process.exit(1);
      }
      return;
    }
    stopping = true;
    logger.info('shutting down: no new jobs; waiting for active ones', { ...cause, graceMs: config.shutdownGraceMs });
    runtime
      .close(config.shutdownGraceMs)
      .then(async () => {
        metrics.close();
        await server.close();
        await tracing.shutdown().catch(() => undefined);
        logger.info('worker stopped', exitCode === 0 ? {} : { exit_code: exitCode });
        process.exit(exitCode);
      })
      .catch((err: unknown) => {
        logger.error('shutdown failed', { error: (err as Error).message });
        process.exit(1);
      });
  };
  const stop = (signal: NodeJS.Signals) => shutdown({ signal }, 0);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  handOver('SIGTERM');
  handOver('SIGINT');
  built = { runtime, metrics, stopAfterFault: () => shutdown({ cause: 'uncaught exception' }, 1) };

  metrics.start();
  const port = await server.listen(config.host, config.workerMetricsPort).catch((err: unknown) => {
    throw listenFailure(err, 'WORKER_METRICS_PORT', config.workerMetricsPort, config.host);
  });
  logger.info('metrics listening', { port, metrics: `http://${config.host}:${port}/metrics` });
  try {
    await runtime.start();
  } catch (err) {
    // Stopped before it got started (Redis out of reach): the shutdown dropped the connections.
    if (stopping) return;
    // BullMQ does not retry a connection whose setup Redis refused (its INFO, say): say what to grant.
    if (!accessRefusalOf(err)) throw err;
    logger.error('cannot start', { error: explainAccessRefusal(err as Error, config.redis, config.prefix) });
    process.exit(1);
  }
  logger.info('worker started', {
    workerId: config.workerId,
    lanes: runtime.lanes,
    maxHandlersPerProcess: config.maxHandlersPerProcess,
    handlers: registry.names(),
  });
}

function exitOnConfigError(err: unknown): never {
  if (err instanceof ConfigError) {
    process.stderr.write(`bullpen worker: ${err.message}\n`);
    process.exit(1);
  }
  throw err;
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) exitOnConfigError(err);
  process.stderr.write(`bullpen worker: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
