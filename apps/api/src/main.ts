// The producer API process: read config, connect, serve, re-read API_KEYS_FILE on SIGHUP, and stop
// cleanly on SIGTERM/SIGINT.
// First: the modules below take seconds to load, and a signal meanwhile must not be lost or fatal.
import { handOver } from '@bullpen/core/startup-signals';
import {
  ConfigError,
  RedisHeartbeat,
  captureConsole,
  createLogger,
  describeConfig,
  describeRedisTarget,
  listenFailure,
  loadConfig,
  registerLanes,
  reloadApiKeysFile,
  startTracing,
} from '@bullpen/core';
import { createApiApp, type ApiApp } from './app';
import { createApiRedis } from './redis-guard';
import { listen } from './server';

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger('api', config.logLevel);
  // BullMQ's and ioredis's own warnings become JSON lines too, each repeat counted once.
  captureConsole(logger);
  const tracing = startTracing(config.tracing, 'bullpen-api', logger);
  logger.info('starting', { config: describeConfig(config), tracing: tracing.enabled });
  const redis = createApiRedis(config.redis, 'bullpen-api', config.apiRedisTimeoutMs);
  // An API with nothing to do must not have its connection closed by Redis's idle timeout: the
  // requests that found it reconnecting would be answered 503 (redis-heartbeat.ts).
  const heartbeat = new RedisHeartbeat(redis).start();
  // Transitions only: ioredis emits 'close' on every failed reconnect attempt.
  let redisUp = false;
  redis.on('ready', () => {
    redisUp = true;
    logger.info('redis ready', { redis: describeRedisTarget(config.redis) });
    // Known to the exporter even after a lanes file drops one of them with jobs still in it.
    void registerLanes(redis, config.prefix, config.laneNames, logger);
  });
  redis.on('close', () => {
    if (!redisUp) return;
    redisUp = false;
    logger.warn('redis connection lost; requests answer 503 until it is back');
  });

  let api: ApiApp;
  try {
    api = createApiApp({ config, redis, logger });
  } catch (err) {
    void heartbeat.close();
    redis.disconnect();
    throw err;
  }
  let stopping = false;
  // Rotating keys needs no restart: requests already authenticated keep going, new ones meet the new keys.
  const reloadKeys = () => {
    if (stopping) return;
    reloadApiKeysFile({
      config,
      logger,
      apply: (keys) => {
        api.keys.replace(keys);
      },
    });
  };
  process.on('SIGHUP', reloadKeys);
  // A SIGHUP while starting may have followed an edit of the file made after loadConfig read it.
  if (handOver('SIGHUP')) reloadKeys();
  await api.start();
  const server = await listen(api.app, config.host, config.port, { keepAliveTimeoutMs: config.apiKeepAliveTimeoutMs }).catch(async (err: unknown) => {
    await api.close();
    await heartbeat.close();
    redis.disconnect();
    throw listenFailure(err, 'PORT', config.port, config.host);
  });
  // url is where this machine reaches it (127.0.0.1 for a wildcard host); host is what it is bound to.
  logger.info('api listening', { url: server.url, host: config.host, lanes: config.laneNames });

  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info('stopping', { signal });
    // Redrives and purges end at a batch boundary and answer before the server's grace is over;
    // awaited before Redis is let go, so that each gives back the claims it holds.
    const draining = api.drain();
    await server.close();
    const ended = await draining;
    if (ended > 0) logger.info('ended dead-letter redrives and purges between batches', { calls: ended });
    await api.close();
    await heartbeat.close();
    await redis.quit().catch(() => redis.disconnect());
    await tracing.shutdown().catch(() => undefined);
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
  handOver('SIGTERM');
  handOver('SIGINT');
}

main().catch((err: unknown) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`bullpen api: ${err.message}\n`);
  } else {
    process.stderr.write(`bullpen api: failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  }
  process.exit(1);
});
