// The API's BullMQ handles recover from a failed initialisation instead of staying broken.
import IORedis from 'ioredis';
import { createLogger, createRedis, redisOptions } from '@bullpen/core';
import { LaneRegistry } from '../apps/api/src/lane-registry';
import { whenReady } from '../apps/api/test/harness';
import { cleanupPrefix, standaloneUrl, testConfig } from './support/config';
import { removeDir, startRedis } from './support/redis-server';
import { waitUntil } from './support/wait';

describe('LaneRegistry', () => {
  it('replaces a queue whose initialisation failed with a fresh one on next use', async () => {
    // Without INFO, BullMQ's connection initialisation (it reads the server version) fails.
    const redis = await startRedis(['--rename-command', 'INFO', '']);
    // ioredis's own ready check also uses INFO: skip it so that only BullMQ's call fails.
    const connection = new IORedis(redis.url, { ...redisOptions('producer'), enableReadyCheck: false });
    connection.on('error', () => undefined);
    const registry = new LaneRegistry(testConfig({ env: { REDIS_URL: redis.url } }), connection, createLogger('api', 'error'));
    try {
      await whenReady(connection);
      const first = registry.queue('tool_call');
      expect(registry.queue('tool_call')).toBe(first);
      await expect(first.waitUntilReady()).rejects.toThrow();
      const second = await waitUntil(() => {
        const current = registry.queue('tool_call');
        return current !== first ? current : undefined;
      }, { what: 'a replacement queue' });
      expect(second.name).toBe('tool_call');
    } finally {
      await registry.close();
      connection.disconnect();
      await redis.stop();
      removeDir(redis.dir);
    }
  });

  it('keeps one queue per lane while its initialisation succeeds', async () => {
    const config = testConfig();
    const connection = createRedis(standaloneUrl(config), 'producer');
    const registry = new LaneRegistry(config, connection, createLogger('api', 'error'));
    try {
      const queue = registry.queue('critic');
      await queue.waitUntilReady();
      expect(registry.queue('critic')).toBe(queue);
      expect(registry.queue('tool_call')).not.toBe(queue);
    } finally {
      await registry.close();
      connection.disconnect();
      await cleanupPrefix(config.prefix);
    }
  });
});
