// The API's producer side on the test Redis, without its HTTP app: a producer connection and the
// lane registry that holds each lane's BullMQ queue.
import { createLogger, createRedis, type BullpenConfig } from '@bullpen/core';
import type IORedis from 'ioredis';
import { LaneRegistry } from '../../apps/api/src/lane-registry';
import { cleanupPrefix, standaloneUrl, testConfig } from './config';
import { waitUntil } from './wait';

/** A producer connection (as the API makes it) to the config's Redis, once it is ready. */
export async function connectProducer(config: BullpenConfig): Promise<IORedis> {
  const redis = createRedis(standaloneUrl(config), 'producer');
  try {
    await waitUntil(() => redis.status === 'ready', { what: 'the producer connection' });
  } catch (err) {
    redis.disconnect();
    throw err;
  }
  return redis;
}

export interface ProducerSide {
  config: BullpenConfig;
  redis: IORedis;
  lanes: LaneRegistry;
  /** Closes the lanes' queues and the connection, and removes the config's keys. */
  close(): Promise<void>;
}

/** The producer side of `config` (by default a test config of its own, with the default lanes). */
export async function startProducerSide(config: BullpenConfig = testConfig()): Promise<ProducerSide> {
  const redis = await connectProducer(config);
  const lanes = new LaneRegistry(config, redis, createLogger('api', 'error'));
  return {
    config,
    redis,
    lanes,
    async close() {
      await lanes.close();
      redis.disconnect();
      await cleanupPrefix(config.prefix);
    },
  };
}
