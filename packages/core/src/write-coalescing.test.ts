import type { Socket } from 'node:net';
import type IORedis from 'ioredis';
import { createRedis } from './redis';
import { MAX_COALESCED_WRITES } from './write-coalescing';
import { redisUrl, testPrefix, waitUntil } from '../../../test/support/wait';

describe('coalesced writes', () => {
  let redis: IORedis;
  const prefix = testPrefix('coalesce');

  beforeAll(async () => {
    redis = createRedis(redisUrl(), 'worker', 'bullpen:test');
    await waitUntil(() => redis.status === 'ready', { what: 'the connection' });
  });
  afterAll(async () => {
    await redis.del(`${prefix}:count`, ...Array.from({ length: 50 }, (_, i) => `${prefix}:${i}`));
    await redis.quit();
  });

  /** The socket writes (each a syscall) that `send` causes, counted where the stream hands them to the OS. */
  async function socketWritesFor(send: () => Promise<unknown>): Promise<number> {
    const stream = (redis as unknown as { stream: Socket & { _write: Function; _writev: Function } }).stream;
    const write = stream._write;
    const writev = stream._writev;
    let writes = 0;
    stream._write = function (this: unknown, ...args: unknown[]) {
      writes += 1;
      return write.apply(this, args);
    };
    stream._writev = function (this: unknown, ...args: unknown[]) {
      writes += 1;
      return writev.apply(this, args);
    };
    try {
      await send();
    } finally {
      stream._write = write;
      stream._writev = writev;
    }
    return writes;
  }

  it('sends the commands made while handling one event in one socket write, in order', async () => {
    const n = MAX_COALESCED_WRITES;
    const writes = await socketWritesFor(() => Promise.all(Array.from({ length: n }, (_, i) => redis.set(`${prefix}:${i}`, String(i)))));
    expect(writes).toBe(1);
    expect(await redis.mget(Array.from({ length: n }, (_, i) => `${prefix}:${i}`))).toEqual(Array.from({ length: n }, (_, i) => String(i)));
  });

  it('sends a long burst in writes of at most MAX_COALESCED_WRITES commands, in order', async () => {
    // Redis starts on the first commands while the rest are still being made.
    const writes = await socketWritesFor(() => Promise.all(Array.from({ length: 50 }, (_, i) => redis.set(`${prefix}:${i}`, `b${i}`))));
    // Fewer only if the OS kept a write pending, which makes the stream join the next ones.
    expect(writes).toBeGreaterThan(1);
    expect(writes).toBeLessThanOrEqual(Math.ceil(50 / MAX_COALESCED_WRITES));
    expect(await redis.mget(Array.from({ length: 50 }, (_, i) => `${prefix}:${i}`))).toEqual(Array.from({ length: 50 }, (_, i) => `b${i}`));
  });

  it('sends commands made in separate turns of the event loop in separate writes', async () => {
    const writes = await socketWritesFor(async () => {
      await redis.incr(`${prefix}:count`);
      await new Promise((resolve) => setImmediate(resolve));
      await redis.incr(`${prefix}:count`);
    });
    expect(writes).toBe(2);
    expect(await redis.get(`${prefix}:count`)).toBe('2');
  });

  it('keeps coalescing after a reconnect', async () => {
    const before = (redis as unknown as { stream: Socket }).stream;
    redis.disconnect(true);
    await waitUntil(() => redis.status === 'ready' && (redis as unknown as { stream: Socket }).stream !== before, { what: 'the reconnect' });
    const writes = await socketWritesFor(() => Promise.all(Array.from({ length: MAX_COALESCED_WRITES }, () => redis.ping())));
    expect(writes).toBe(1);
  });
});
