// The metrics sidecar. For now it only proves liveness and Redis reachability on EXPORTER_PORT;
// the metrics pipeline (event streams → counters and histograms) is built on this process.
import http from 'node:http';
import { ConfigError, createLogger, createRedis, loadConfig } from '@bullpen/core';

async function main(): Promise<void> {
  const config = loadConfig(process.env);
  const logger = createLogger('exporter', config.logLevel);
  const redis = createRedis(config.redisUrl, 'events', 'bullpen-exporter');

  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/healthz') {
      const body = JSON.stringify({ status: 'ok', redis: redis.status });
      res.writeHead(200, { 'content-type': 'application/json' }).end(body);
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 404 }));
  });
  await new Promise<void>((resolve) => server.listen(config.exporterPort, config.host, resolve));
  const address = server.address();
  logger.info('exporter listening', { port: typeof address === 'object' && address ? address.port : config.exporterPort });

  const stop = (signal: string) => {
    logger.info('exporter stopping', { signal });
    server.close();
    redis.disconnect();
    process.exit(0);
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`bullpen exporter: configuration error: ${err.message}\n`);
  } else {
    process.stderr.write(`bullpen exporter: ${(err as Error).stack ?? String(err)}\n`);
  }
  process.exit(1);
});
