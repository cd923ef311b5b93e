// The producer API as an Express app over one shared producer Redis connection. Building it
// starts no I/O: BullMQ handles are created on first use and the caller owns the connection.
import express, { type Express } from 'express';
import { assertAuthConfigured, EvictionPolicyWatch, warnOfDemoKey, evictingPolicyMessage, RedisConnectionWatch, RedisDataLossWatch, registerLanes, type RedisClient } from '@bullpen/core';
import type { BullpenConfig, Logger } from '@bullpen/core';
import { mountAdminUi } from './admin-ui';
import { authenticate } from './auth';
import { DeadLetters } from './dead-letters';
import { JobAccess } from './job-access';
import { ApiKeyTable } from './key-table';
import { LaneRegistry } from './lane-registry';
import { createApiMetrics, markMount, metricsHandler, observe } from './observability';
import { buildOpenApiDocument } from './openapi';
import { errorHandler, methodNotAllowedHandler, notFoundHandler, sendProblem, unavailableProblem } from './problem';
import { JobProducer } from './producer';
import { JobsInFlight } from './jobs-in-flight';
import { RedisGuard } from './redis-guard';
import { RedisMemoryWatch } from './redis-memory-watch';
import { routeTable } from './route-table';
import { deadLetterRoutes } from './routes/dead';
import { jobRoutes } from './routes/jobs';
import { laneRoutes } from './routes/lanes';

export interface ApiAppOptions {
  config: BullpenConfig;
  /** The producer connection (createRedis(url, 'producer')): fails fast, never queues offline. */
  redis: RedisClient;
  logger: Logger;
}

export interface ApiApp {
  app: Express;
  /** The API keys in force: main.ts replaces them when API_KEYS_FILE is reloaded. */
  keys: ApiKeyTable;
  /**
   * Takes the first reading of Redis's memory and policy (redis-memory-watch.ts), so that Redis
   * past API_REDIS_MEMORY_LIMIT refuses the very first submission and an evicting policy is
   * logged at start; resolves when it is taken or has failed. Call it before listening.
   */
  start(): Promise<void>;
  /**
   * For a stopping API, before its HTTP server closes: ends the dead-letter redrives and purges
   * under way after their current batch (each answers 503 api_stopping with its results so far),
   * refuses new ones, and resolves with how many there were once they have given back their claims.
   */
  drain(): Promise<number>;
  /** Closes the BullMQ handles; the HTTP server and the Redis connection belong to the caller. */
  close(): Promise<void>;
}

/** Throws ConfigError when authentication is on but no API key is configured. */
export function createApiApp({ config, redis, logger }: ApiAppOptions): ApiApp {
  assertAuthConfigured(config, config.apiKeys);
  warnOfDemoKey(config.apiKeys, logger);
  if (config.authDisabled) {
    logger.warn('authentication is disabled (AUTH_DISABLED=true): every request acts as tenant "default"');
  }

  // Why Redis cannot be reached, or what it refuses, is logged and said in the 503s it causes.
  const redisWatch = new RedisConnectionWatch({ target: config.redis, prefix: config.prefix, logger }).watch(redis);
  const guard = new RedisGuard(redis, config.apiRedisTimeoutMs, redisWatch);
  const lanes = new LaneRegistry(config, redis, logger);
  const inFlight = new JobsInFlight(config.apiMaxInflightJobs, config.apiInflightWaitMs);
  const metrics = createApiMetrics(inFlight, config.laneNames);
  const policies = new EvictionPolicyWatch(logger);
  const memory = new RedisMemoryWatch(redis, config.prefix, config.apiRedisMemoryLimit, policies);
  // Says when Redis lost bullpen's data: read at each (re)connect and every
  // REDIS_MARKER_CHECK_INTERVAL_MS (a flush drops no connection), never per job.
  const dataLoss = new RedisDataLossWatch({
    prefix: config.prefix,
    logger,
    intervalMs: config.redisMarkerCheckIntervalMs,
    onLoss: () => {
      metrics.counter('bullpen_redis_data_lost_total').inc();
      // The lane registry went with the data; main.ts writes it at each reconnect, which a flush is not.
      void registerLanes(redis, config.prefix, config.laneNames, logger);
    },
  });
  let stopDataLossWatch: (() => void) | undefined;
  const producer = new JobProducer({ config, redis, guard, lanes, metrics, logger, inFlight, memory });
  const access = new JobAccess({ config, redis, guard, lanes });
  const deadLetters = new DeadLetters({ config, redis, guard, lanes, inFlight });
  let openApi: string | undefined;

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(observe(metrics));

  // The API proper comes first, job submissions (the hot path) leading: Express matches a request
  // against each layer in turn. Each path is one layer whose routes authenticate and run the rest
  // of their middleware themselves (route-table.ts); another method on it is authenticated too,
  // then answered 405 with Allow (OPTIONS: 204 with Allow).
  const keys = new ApiKeyTable(config);
  const auth = authenticate(config, keys);
  const v1 = routeTable(app, '/v1', [auth]);
  jobRoutes(v1, { config, producer, access });
  laneRoutes(v1, { config, guard, lanes });
  deadLetterRoutes(v1, { config, deadLetters });
  v1.otherMethods(methodNotAllowedHandler);
  // Any other /v1 path is authenticated like the routes, then answered 404 (labelled /v1/*).
  app.use('/v1', markMount(), auth);

  const root = routeTable(app, '', []);
  root.get('/metrics', metricsHandler(metrics));
  root.get('/healthz', (_req, res) => {
    res.status(200).json({ status: 'ok' });
  });
  // An evicting maxmemory-policy leaves the API ready (Redis takes and keeps jobs until it is
  // full), but the answer says it, as the log does.
  root.get('/readyz', async (_req, res) => {
    const evicting = policies.evictingPolicy();
    if (await guard.ping()) res.status(200).json({ status: 'ready', ...(evicting ? { warnings: [evictingPolicyMessage(evicting)] } : {}) });
    else sendProblem(res, unavailableProblem(guard.ready ? `Redis did not answer PING within ${config.apiRedisTimeoutMs} ms` : guard.notReadyReason()));
  });
  root.get('/openapi.json', (_req, res) => {
    openApi ??= JSON.stringify(buildOpenApiDocument(config));
    res.status(200).type('application/json').send(openApi);
  });
  root.otherMethods(methodNotAllowedHandler);
  const adminQueues = mountAdminUi(app, config, redis);

  app.use(notFoundHandler());
  app.use(errorHandler(logger, config.bodyLimitBytes, redisWatch));

  return {
    app,
    keys,
    start: async () => {
      stopDataLossWatch = dataLoss.watchConnection(redis);
      await memory.start();
    },
    drain: () => deadLetters.stop(),
    close: async () => {
      stopDataLossWatch?.();
      await memory.close();
      await Promise.all([lanes.close(), ...adminQueues.map((q) => q.close().catch(() => undefined))]);
    },
  };
}
