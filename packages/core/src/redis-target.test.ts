import { loadConfig } from './config';
import { describeRedisTarget, loadRedisTarget } from './redis-target';

describe('loadRedisTarget', () => {
  it('defaults to one server on localhost', () => {
    expect(loadRedisTarget({})).toEqual({ mode: 'standalone', url: 'redis://127.0.0.1:6379' });
  });

  it('reads cluster seed nodes with their shared credentials and scheme', () => {
    const target = loadRedisTarget({ REDIS_CLUSTER_NODES: 'rediss://app:s%40cret@a:7000, rediss://app:s%40cret@b:7001' });
    expect(target).toEqual({
      mode: 'cluster',
      nodes: [
        { host: 'a', port: 7000 },
        { host: 'b', port: 7001 },
      ],
      auth: { username: 'app', password: 's@cret', tls: true },
    });
    expect(JSON.stringify(describeRedisTarget(target))).not.toContain('s@cret');
  });

  it('masks a password given as a query parameter of REDIS_URL, which ioredis accepts too', () => {
    const target = loadRedisTarget({ REDIS_URL: 'redis://127.0.0.1:6379/0?password=QUERYSECRET' });
    expect(JSON.stringify(describeRedisTarget(target))).not.toContain('QUERYSECRET');
  });

  it('reads sentinels, the master group and the master credentials and database from REDIS_URL', () => {
    const target = loadRedisTarget({
      REDIS_SENTINELS: 'redis://:sentinelpw@s1:26379,redis://:sentinelpw@s2:26380',
      REDIS_SENTINEL_MASTER: 'mymaster',
      REDIS_URL: 'redis://:masterpw@ignored:6379/3',
    });
    expect(target).toEqual({
      mode: 'sentinel',
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26380 },
      ],
      sentinelAuth: { password: 'sentinelpw', tls: false },
      masterName: 'mymaster',
      auth: { password: 'masterpw', tls: false },
      db: 3,
    });
    const described = JSON.stringify(describeRedisTarget(target));
    expect(described).not.toContain('sentinelpw');
    expect(described).not.toContain('masterpw');
  });

  it.each([
    [{ REDIS_CLUSTER_NODES: 'redis://a:1', REDIS_SENTINELS: 'redis://b:2' }, /REDIS_CLUSTER_NODES: expected REDIS_CLUSTER_NODES or REDIS_SENTINELS, not both/],
    [{ REDIS_CLUSTER_NODES: 'redis://a:1', REDIS_URL: 'redis://a:1' }, /REDIS_URL: expected to be unset with REDIS_CLUSTER_NODES/],
    [{ REDIS_CLUSTER_NODES: 'a:7000' }, /REDIS_CLUSTER_NODES: expected a redis:\/\/ or rediss:\/\/ URL, got "a:7000"/],
    [{ REDIS_CLUSTER_NODES: ' , ' }, /REDIS_CLUSTER_NODES: expected at least one/],
    [{ REDIS_CLUSTER_NODES: 'redis://:x@a:1,redis://:y@b:2' }, /REDIS_CLUSTER_NODES: expected the same credentials/],
    [{ REDIS_SENTINELS: 'redis://s:26379' }, /REDIS_SENTINEL_MASTER: expected the name of the master group/],
    [{ REDIS_SENTINEL_MASTER: 'mymaster' }, /REDIS_SENTINEL_MASTER: expected to be set only with REDIS_SENTINELS/],
    [{ REDIS_SENTINELS: 'redis://s:26379', REDIS_SENTINEL_MASTER: 'm', REDIS_URL: 'redis://x/abc' }, /REDIS_URL: expected a database number/],
    [{ REDIS_URL: 'redis://127.0.0.1:6379/abc' }, /REDIS_URL: expected a database number as its path/],
    [{ REDIS_URL: 'redis://127.0.0.1:6379/1/2' }, /REDIS_URL: expected a database number as its path/],
  ])('names the variable for a bad combination or value (%j)', (env, message) => {
    expect(() => loadRedisTarget(env)).toThrow(message);
  });

  it('takes a database number as the path of a standalone REDIS_URL', () => {
    expect(loadRedisTarget({ REDIS_URL: 'redis://127.0.0.1:6379/3' })).toEqual({ mode: 'standalone', url: 'redis://127.0.0.1:6379/3' });
    expect(loadRedisTarget({ REDIS_URL: 'redis://127.0.0.1:6379/' }).mode).toBe('standalone');
  });

  it('masks passwords in the value a bad REDIS_URL error shows', () => {
    const messages = ['redis://app:s3cret@db:6379/x', 'redis://db:6379/x?password=s3cret', 'redis://:s3cret@db/abc'].map((url) => {
      try {
        loadRedisTarget({ REDIS_URL: url });
      } catch (err) {
        return (err as Error).message;
      }
      throw new Error(`${url} was accepted`);
    });
    for (const message of messages) {
      expect(message).toMatch(/^REDIS_URL: expected a database number/);
      expect(message).not.toContain('s3cret');
      expect(message).toContain('***');
    }
    expect(() => loadRedisTarget({ REDIS_CLUSTER_NODES: 'redis://:s3cret@a:1,redis://:0ther@b:2' })).toThrow(
      /got "redis:\/\/\*\*\*@a:1,redis:\/\/\*\*\*@b:2"/,
    );
  });

  it.each([
    ['REDIS_URL', 'redis://:abc/Def+Secret=@127.0.0.1:7850', ['abc', 'Def+Secret'], 'redis://***@127.0.0.1:7850'],
    ['REDIS_URL', 'redis://bullpen:abc/DefSecret@127.0.0.1:7850/0', ['abc', 'DefSecret'], 'redis://***@127.0.0.1:7850/0'],
    ['REDIS_URL', 'redis:/:DefSecret@127.0.0.1:7850', ['DefSecret'], 'redis:/***@127.0.0.1:7850'],
    ['REDIS_URL', 'redis//:DefSecret@127.0.0.1:7850', ['DefSecret'], '***@127.0.0.1:7850'],
    ['REDIS_URL', 'redis://:p@ss/w:rd@127.0.0.1:7850', ['p@ss', 'w:rd', 'ss/w'], 'redis://***@127.0.0.1:7850'],
    ['REDIS_URL', 'redis://app:pa#ss?wd@db:6379', ['pa#ss', 'ss?wd'], 'redis://***@db:6379'],
    ['REDIS_URL', 'redis://app:pa?ss#wd@db:6379/0', ['pa?ss', 'ss#wd'], 'redis://***@db:6379/0'],
    ['REDIS_URL', 'redis://:NoAtSignSecret', ['NoAtSignSecret'], 'redis://(not shown)'],
    ['REDIS_URL', 'redis:/:NoAtSignSecret', ['NoAtSignSecret'], 'redis:/(not shown)'],
    ['REDIS_CLUSTER_NODES', 'redis://:abc/Secret1@a:7000,redis://:abc/Secret1@b:7001', ['abc', 'Secret1'], 'redis://***@a:7000'],
    ['REDIS_CLUSTER_NODES', 'redis:/:Secret1@a:7000', ['Secret1'], 'redis:/***@a:7000'],
    ['REDIS_SENTINELS', 'redis://:s#ntinel?pw@s1:26379', ['s#ntinel', 'ntinel?pw'], 'redis://***@s1:26379'],
  ])('never shows a password that %s does not parse as a URL (%s)', (name, value, secrets, shown) => {
    let message = '';
    try {
      loadRedisTarget({ [name]: value, ...(name === 'REDIS_SENTINELS' ? { REDIS_SENTINEL_MASTER: 'mymaster' } : {}) });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(new RegExp(`^${name}: expected `));
    for (const secret of secrets) expect([message, message.includes(secret)]).toEqual([message, false]);
    expect(message).toContain(JSON.stringify(shown).slice(0, -1));
  });

  it('still shows a bare host or host:port that is not a URL', () => {
    expect(() => loadRedisTarget({ REDIS_URL: 'localhost:6379' })).toThrow('REDIS_URL: expected a redis:// or rediss:// URL, got "localhost:6379"');
  });

  it('is what loadConfig reports as the redis target, and a prefix with a hash tag of its own is refused', () => {
    expect(loadConfig({ REDIS_CLUSTER_NODES: 'redis://127.0.0.1:7000' }).redis.mode).toBe('cluster');
    expect(() => loadConfig({ BULLPEN_PREFIX: '{bullpen}' })).toThrow(/BULLPEN_PREFIX: expected letters, digits/);
  });
});
