// Walking a lane's failed set while other calls remove entries from it. Dead letters often share a
// failure time (BullMQ's stalled-job checker fails many jobs in one millisecond), so a redrive-all,
// a purge-all or a page of the listing must keep its place in a run of equal scores even when
// another call removes some of the entries it has already passed. The other call's removal is put
// between two of the walk's reads of the failed set, where a concurrent call's can land.
import { Queue } from 'bullmq';
import type IORedis from 'ioredis';
import { createLogger, laneBacklogKeys, lanePrefix, laneStateKeys, wrapJobData } from '@bullpen/core';
import { DeadLetters } from '../apps/api/src/dead-letters';
import { LaneRegistry } from '../apps/api/src/lane-registry';
import { RedisGuard } from '../apps/api/src/redis-guard';
import { startTestApi, type TestApi } from '../apps/api/test/harness';

const LANE = 'tool_call';
/** A failure time shared by many dead letters. */
const T = 1_700_000_000_000;

/**
 * `redis` as is, except that each read of `key`'s range first runs `before` with the read's number
 * (1, 2, ...): the commands go to the real Redis, in between whatever `before` does there.
 */
function withHookBeforeReads(redis: IORedis, key: string, before: (read: number) => Promise<void>): IORedis {
  let reads = 0;
  return new Proxy(redis, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      const method = value as (...args: unknown[]) => unknown;
      if (typeof prop === 'string' && /^z(rev)?range/i.test(prop)) {
        return async (...args: unknown[]) => {
          if (args[0] === key) {
            reads += 1;
            await before(reads);
          }
          return method.apply(target, args);
        };
      }
      return method.bind(target);
    },
  });
}

describe('dead letters: walking the failed set while other calls remove from it', () => {
  let api: TestApi;
  let queue: Queue;
  let lanes: LaneRegistry;
  let failedKey: string;

  beforeEach(async () => {
    api = await startTestApi();
    queue = new Queue(LANE, { connection: api.redis, prefix: lanePrefix(api.config.prefix, LANE) });
    lanes = new LaneRegistry(api.config, api.producer, createLogger('api', 'error'));
    failedKey = laneStateKeys(api.config.prefix, LANE).failed;
  });

  afterEach(async () => {
    await lanes.close();
    await queue.close();
    await api.stop();
  });

  /** Dead letters of `tenant` with these ids, failed at these times, as bullpen's worker leaves them: in the failed set. */
  async function seedDead(tenant: string, dead: readonly (readonly [id: string, failedAt: number])[]): Promise<void> {
    await queue.addBulk(dead.map(([id]) => ({ name: 'flaky', data: wrapJobData({}, { v: 1, tenant }), opts: { jobId: id } })));
    await api.redis.del(laneBacklogKeys(api.config.prefix, LANE).wait);
    await api.redis.zadd(failedKey, ...dead.flatMap(([id, failedAt]) => [failedAt, id]));
  }

  /** Dead letters in batches of 2, its reads of the failed set preceded by `before`. */
  function deadLetters(before: (read: number) => Promise<void>): DeadLetters {
    const redis = withHookBeforeReads(api.producer, failedKey, before);
    return new DeadLetters({ config: api.config, redis, guard: new RedisGuard(redis), lanes }, { batchSize: 2 });
  }

  it.each(['redrive', 'purge'] as const)(
    "%ss every one of the tenant's dead letters when another tenant's purge removes entries it has passed",
    async (action) => {
      // Newest first: beta's two failed in one millisecond, then acme's six, three of them in another.
      await seedDead('beta', [
        ['beta-1', T],
        ['beta-2', T],
      ]);
      const acme = ['acme-6', 'acme-5', 'acme-4', 'acme-3', 'acme-2', 'acme-1'];
      await seedDead('acme', [
        ['acme-6', T - 1],
        ['acme-5', T - 1],
        ['acme-4', T - 1],
        ['acme-3', T - 2],
        ['acme-2', T - 3],
        ['acme-1', T - 4],
      ]);
      // beta's purge of its own dead letters removes one that acme's call has passed, between the
      // call's second and third reads.
      const dead = deadLetters(async (read) => {
        if (read === 3) expect(await queue.remove('beta-1')).toBe(1);
      });

      const result = action === 'redrive' ? await dead.redrive(LANE, 'acme') : await dead.purge(LANE, 'acme');
      const done = action === 'redrive' ? 'redriven' : 'purged';
      expect(result.results).toEqual(acme.map((id) => ({ id, status: done })));
      expect(result).toMatchObject({ lane: LANE, [done]: 6, notFound: 0, notDead: 0 });
      expect(await api.redis.zrange(failedKey, 0, -1)).toEqual(['beta-2']);
    },
  );

  it.each([
    ['between two pages', 1],
    ['inside a page, between its first two reads', 2],
  ])(
    'lists every dead letter once when pages end inside a run of equal failure times and the entries listed are removed %s',
    async (_when, removeBeforeRead) => {
      const acme = ['acme-9', 'acme-8', 'acme-7', 'acme-6', 'acme-5', 'acme-4', 'acme-3', 'acme-2', 'acme-1'];
      // Seven failed in one millisecond, then two more.
      await seedDead('acme', [...acme.slice(0, 7).map((id) => [id, T] as const), ['acme-2', T - 1], ['acme-1', T - 2]]);
      const listed: string[] = [];
      let readsOfPage = 0;
      // Another call purges the dead letters the pages before have listed.
      const dead = deadLetters(async () => {
        readsOfPage += 1;
        if (readsOfPage === removeBeforeRead) for (const id of listed) await queue.remove(id);
      });

      let cursor: string | undefined;
      let pages = 0;
      do {
        readsOfPage = 0;
        const page = await dead.list(LANE, 'acme', cursor ? { limit: 2, cursor } : { limit: 2 });
        expect(page.items.length).toBeLessThanOrEqual(2);
        listed.push(...page.items.map((item) => item.id));
        cursor = page.nextCursor ?? undefined;
        pages += 1;
      } while (cursor && pages < 20);
      expect(listed).toEqual(acme);
    },
  );
});
