// The metrics sidecar: counts every lane's event stream into Prometheus counters and histograms
// that survive restarts, and reads queue state at scrape time; re-reads API_KEYS_FILE's tenants on
// SIGHUP. Wiring only.
// First: the modules below take seconds to load, and a signal meanwhile must not be lost or fatal.
import { handOver } from '@bullpen/core/startup-signals';
import {
  ConfigError,
  captureConsole,
  configuredTenants,
  createLogger,
  describeConfig,
  listenFailure,
  reloadApiKeysFile,
  startTracing,
  warnOfDemoKey,
} from '@bullpen/core';
import { loadExporterConfig } from './config';
import { Exporter } from './exporter';

async function main(): Promise<void> {
  const config = loadExporterConfig(process.env);
  const logger = createLogger('exporter', config.core.logLevel);
  // BullMQ's and ioredis's own warnings become JSON lines too, each repeat counted once.
  captureConsole(logger);
  const tracing = startTracing(config.core.tracing, 'bullpen-exporter', logger);
  logger.info('starting', {
    config: describeConfig(config.core),
    jobNames: config.jobNames,
    tenants: config.tenants,
    batchSize: config.batchSize,
    tracing: tracing.enabled,
  });
  warnOfDemoKey(config.core.apiKeys, logger);
  let stop: (signal: string, exitCode?: number) => void = () => undefined;
  // Restarted, this process stands by until the lease is free again.
  const exporter = new Exporter(config, logger, { onLeadershipLost: () => stop('leadership lost', 1) });
  let stopping = false;
  // The tenants of new keys get a `tenant` label of their own without a restart.
  const reloadTenants = () => {
    if (stopping) return;
    reloadApiKeysFile({
      config: config.core,
      logger,
      apply: (apiKeys) => {
        const tenants = configuredTenants({ apiKeys, authDisabled: config.core.authDisabled });
        exporter.replaceTenants(tenants);
        return { tenantLabels: tenants };
      },
    });
  };
  process.on('SIGHUP', reloadTenants);
  // A SIGHUP while starting may have followed an edit of the file made after loadConfig read it.
  if (handOver('SIGHUP')) reloadTenants();
  const port = await exporter.start().catch((err: unknown) => {
    throw listenFailure(err, 'EXPORTER_PORT', config.core.exporterPort, config.core.host);
  });
  logger.info('exporter listening', {
    port,
    metrics: `http://${config.core.host}:${port}/metrics`,
    lanes: config.core.laneNames,
    prefix: config.core.prefix,
  });

  stop = (signal: string, exitCode = 0) => {
    if (stopping) return;
    stopping = true;
    logger.info('exporter stopping', { signal });
    exporter
      .close()
      .then(() => tracing.shutdown().catch(() => undefined))
      .then(
        () => process.exit(exitCode),
        (err: unknown) => {
          logger.error('exporter did not close cleanly', { err: String(err) });
          process.exit(1);
        },
      );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  handOver('SIGTERM');
  handOver('SIGINT');
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`bullpen exporter: configuration error: ${err.message}\n`);
  } else {
    process.stderr.write(`bullpen exporter: ${(err as Error).stack ?? String(err)}\n`);
  }
  process.exit(1);
});
