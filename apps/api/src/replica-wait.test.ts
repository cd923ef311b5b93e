// A submission's jobs are on the primary before the API asks the replicas: whatever keeps it from
// asking must not turn into an answer that says nothing was written.
import IORedis from 'ioredis';
import { loadConfig } from '@bullpen/core';
import { RedisOutcomeUnknownError } from './redis-guard';
import { ReplicaWait } from './replica-wait';

describe('ReplicaWait', () => {
  const config = (replicas: string) => loadConfig({ API_REDIS_WAIT_REPLICAS: replicas, API_REDIS_WAIT_TIMEOUT_MS: '100' });

  it('reports a connection lost before the replicas could be asked as an outcome unknown', async () => {
    const down = new IORedis({ lazyConnect: true }); // never connected: not ready
    try {
      const err = await new ReplicaWait(down, config('1')).confirm('tool_call').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RedisOutcomeUnknownError);
      expect((err as Error).message).toMatch(/^the replicas could not be asked: Redis is not connected yet/);
    } finally {
      down.disconnect();
    }
  });

  it('asks nothing when no replica is asked for', async () => {
    const down = new IORedis({ lazyConnect: true });
    try {
      await expect(new ReplicaWait(down, config('0')).confirm('tool_call')).resolves.toBeUndefined();
    } finally {
      down.disconnect();
    }
  });
});
