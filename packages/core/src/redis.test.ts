import type IORedis from 'ioredis';
import { ReplyError } from 'ioredis';
import { startOutageProxy, type OutageProxy } from '../../../test/support/outage-proxy';
import { redisUrl, waitUntil } from '../../../test/support/wait';
import { createRedis, isReadOnlyReply, reconnectNow, transientRefusalOf, whenReady } from './redis';
import { isOutOfMemoryReply } from './redis-memory';

const aborted = (...previousErrors: Error[]) =>
  Object.assign(new ReplyError('EXECABORT Transaction discarded because of previous errors.'), { previousErrors });

describe("Redis's refusals", () => {
  it("tells a replica's READONLY refusal from an OOM one, also inside an aborted transaction", () => {
    const readOnly = new ReplyError("READONLY You can't write against a read only replica.");
    expect(isReadOnlyReply(readOnly)).toBe(true);
    expect(isOutOfMemoryReply(readOnly)).toBe(false);
    expect(isReadOnlyReply(aborted(readOnly))).toBe(true);
  });

  it('names the refusals that pass, and nothing else', () => {
    expect(transientRefusalOf(new ReplyError('BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.'))).toBe('BUSY');
    expect(transientRefusalOf(new ReplyError('LOADING Redis is loading the dataset in memory'))).toBe('LOADING');
    expect(transientRefusalOf(aborted(new ReplyError("READONLY You can't write against a read only replica.")))).toBe('READONLY');
    expect(transientRefusalOf(new ReplyError("OOM command not allowed when used memory > 'maxmemory'."))).toBeUndefined();
    expect(transientRefusalOf(new ReplyError('ERR unknown command'))).toBeUndefined();
    expect(transientRefusalOf(new Error('BUSY'))).toBeUndefined();
  });
});

describe('reconnectNow', () => {
  const name = 'bullpen:test:reconnect-now';
  let proxy: OutageProxy;
  let client: IORedis;

  beforeEach(async () => {
    proxy = await startOutageProxy(Number(new URL(redisUrl()).port));
    client = createRedis(proxy.url, 'worker', name);
    await whenReady(client, 5000);
  });
  afterEach(async () => {
    client.disconnect();
    await proxy.close();
  });

  it('makes a connection waiting out its reconnect delay after Redis came back try at once', async () => {
    proxy.down();
    // Four attempts failed: the delay before the next is 1.6 s or more.
    await waitUntil(() => proxy.dropped(name) >= 4, { what: 'the connection to retry a few times' });
    await proxy.nextDropped(name, () => proxy.up());
    await waitUntil(() => client.status === 'reconnecting', { what: 'the connection to wait out its delay' });

    const calledAt = Date.now();
    reconnectNow(client);
    await whenReady(client, 1000);
    expect(Date.now() - calledAt).toBeLessThan(1000);
    expect(await client.ping()).toBe('PONG');
    // The attempt it had planned is dropped with its timer: none comes after this one.
    expect((client as unknown as { reconnectTimeout: unknown }).reconnectTimeout).toBeNull();
  });

  it('leaves a ready connection alone', async () => {
    reconnectNow(client);
    expect(client.status).toBe('ready');
    expect(await client.ping()).toBe('PONG');
  });
});
