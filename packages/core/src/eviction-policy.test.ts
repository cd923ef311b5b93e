import { EvictionPolicyWatch, isEvictingPolicy } from './eviction-policy';
import { createLogger } from './logger';
import { captureLogs } from '../../../test/support/logs';

function capture() {
  const logger = createLogger('worker', 'info');
  return { logger, lines: captureLogs(logger) };
}

describe('EvictionPolicyWatch', () => {
  it('takes every policy but noeviction for one that evicts, and an unread one for none', () => {
    for (const policy of ['allkeys-lru', 'allkeys-lfu', 'allkeys-random', 'volatile-lru', 'volatile-lfu', 'volatile-random', 'volatile-ttl']) {
      expect(isEvictingPolicy(policy)).toBe(true);
    }
    expect(isEvictingPolicy('noeviction')).toBe(false);
    expect(isEvictingPolicy('unknown')).toBe(false);
  });

  it('logs an evicting policy once per server, again only when a reading finds it changed', () => {
    const { logger, lines } = capture();
    const watch = new EvictionPolicyWatch(logger);
    watch.observe('a:6379', 'noeviction');
    expect(lines).toEqual([]);
    for (let i = 0; i < 3; i++) watch.observe('b:6379', 'allkeys-lru');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 'error', msg: 'redis may evict jobs', redis: 'b:6379', maxmemory_policy: 'allkeys-lru' });
    expect(lines[0]!.error).toMatch(/bullpen may lose jobs.*CONFIG SET maxmemory-policy noeviction/);
    expect(watch.evictingPolicy()).toBe('allkeys-lru');
    expect(watch.evictingPolicy('a:6379')).toBeUndefined();

    watch.observe('b:6379', 'volatile-lru');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ level: 'error', maxmemory_policy: 'volatile-lru' });

    watch.observe('b:6379', 'noeviction');
    watch.observe('b:6379', 'noeviction');
    expect(lines).toHaveLength(3);
    expect(lines[2]).toMatchObject({ level: 'info', msg: 'redis no longer evicts keys', was: 'volatile-lru' });
    expect(watch.evictingPolicy()).toBeUndefined();
  });
});
