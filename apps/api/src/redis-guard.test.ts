import IORedis, { ReplyError } from 'ioredis';
import type { RedisClient } from '@bullpen/core';
import { RedisGuard, isConnectionFailure } from './redis-guard';

describe('isConnectionFailure', () => {
  it('knows the errors of a connection that is down, lost or too slow', async () => {
    // A real fail-fast client with nothing listening: what it rejects with is what the API sees.
    const client = new IORedis({ port: 1, lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    const refused = await client.ping().catch((err: unknown) => err);
    client.disconnect();
    expect(isConnectionFailure(refused)).toBe(true);
    for (const message of ['Connection is closed.', 'Command timed out', "Cluster isn't ready and enableOfflineQueue options is false"]) {
      expect(isConnectionFailure(new Error(message))).toBe(true);
    }
    expect(isConnectionFailure(Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }))).toBe(true);
  });

  it('does not take a refusal or a bug for an outage', () => {
    expect(isConnectionFailure(new ReplyError('ERR wrong number of arguments'))).toBe(false);
    // What BullMQ throws for options it will not send.
    expect(isConnectionFailure(new Error('Priority should be between 0 and 2097151'))).toBe(false);
    expect(isConnectionFailure(new RangeError('Maximum call stack size exceeded'))).toBe(false);
    expect(isConnectionFailure(new TypeError('x is undefined'))).toBe(false);
    expect(isConnectionFailure('Connection is closed.')).toBe(false);
  });
});

describe('RedisGuard.notReadyReason', () => {
  it('names the connection state in words, not as ioredis spells its status', () => {
    const reasons = ['wait', 'connecting', 'connect', 'reconnecting', 'end'].map((status) =>
      new RedisGuard({ status } as unknown as RedisClient).notReadyReason(),
    );
    expect(reasons).toEqual([
      'Redis is not connected yet; retry shortly',
      'Redis is connecting; retry shortly',
      'Redis is connecting; retry shortly',
      'Redis is reconnecting; retry shortly',
      'Redis is disconnected; retry shortly',
    ]);
  });
});
