import { ReplyError } from 'ioredis';
import IORedis from 'ioredis';
import { isOutOfMemoryReply, keySlot, memoryRatio, parseMemoryInfo, serverAddress } from './redis-memory';

describe('parseMemoryInfo', () => {
  it('reads used memory, the limit and the policy from an INFO memory reply', () => {
    const info = '# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\nmaxmemory:4194304\r\nmaxmemory_policy:noeviction\r\n';
    const memory = parseMemoryInfo(info);
    expect(memory).toEqual({ usedBytes: 1048576, maxBytes: 4194304, policy: 'noeviction' });
    expect(memoryRatio(memory)).toBe(0.25);
  });

  it('has no ratio when Redis has no limit', () => {
    expect(memoryRatio(parseMemoryInfo('used_memory:10\nmaxmemory:0\nmaxmemory_policy:noeviction\n'))).toBeUndefined();
  });

  it('refuses a reply without the fields it needs', () => {
    expect(() => parseMemoryInfo('# Memory\r\nmaxmemory:0\r\n')).toThrow(/used_memory/);
  });
});

describe('isOutOfMemoryReply', () => {
  it("recognises Redis's OOM refusal, also inside an aborted transaction", () => {
    const oom = new ReplyError("OOM command not allowed when used memory > 'maxmemory'.");
    expect(isOutOfMemoryReply(oom)).toBe(true);
    const aborted = Object.assign(new ReplyError('EXECABORT Transaction discarded because of previous errors.'), { previousErrors: [oom] });
    expect(isOutOfMemoryReply(aborted)).toBe(true);
  });

  it('does not take other failures for it', () => {
    expect(isOutOfMemoryReply(new ReplyError('ERR wrong number of arguments'))).toBe(false);
    expect(isOutOfMemoryReply(new Error('OOM command not allowed'))).toBe(false);
    const aborted = Object.assign(new ReplyError('EXECABORT Transaction discarded because of previous errors.'), {
      previousErrors: [new ReplyError('ERR unknown command')],
    });
    expect(isOutOfMemoryReply(aborted)).toBe(false);
  });
});

describe('keySlot', () => {
  it("computes Redis Cluster's slot, hashing only the hash tag when there is one", () => {
    // Values from `CLUSTER KEYSLOT` on a real server.
    expect(keySlot('foo')).toBe(12182);
    expect(keySlot('{}foo')).toBe(9500); // an empty tag is no tag: the whole key is hashed
    expect(keySlot('{user1000}.following')).toBe(keySlot('user1000'));
    expect(keySlot('bullpen:{tool_call}:tool_call:wait')).toBe(keySlot('tool_call'));
  });
});

describe('serverAddress', () => {
  it('names a server by host and port, and a master found through Sentinel by its group', () => {
    const direct = new IORedis('redis://redis.internal:6380', { lazyConnect: true });
    const viaSentinel = new IORedis({ lazyConnect: true, sentinels: [{ host: 's1', port: 26379 }], name: 'mymaster' });
    expect(serverAddress(direct)).toBe('redis.internal:6380');
    expect(serverAddress(viaSentinel)).toBe('sentinel:mymaster');
    direct.disconnect();
    viaSentinel.disconnect();
  });
});
