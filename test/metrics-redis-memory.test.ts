// The exporter's view of Redis's memory against a private redis-server with a known limit: used
// and max bytes and the maxmemory policy as INFO memory says, a change of policy or limit seen on
// the next scrape, and an INFO that Redis refuses counted as an unreadable Redis. And an exporter
// started while Redis is full, which cannot take its leadership lease until memory is freed.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import IORedis from 'ioredis';
import { readMemory } from '@bullpen/core';
import { spawnExporter, total, type ExporterProcess, type Sample } from './support/prometheus';
import { removeDir, startRedis, type RedisProcess } from './support/redis-server';
import { testPrefix, waitUntil } from './support/wait';

const MAX_BYTES = 64 * 1024 * 1024;
/** used_memory moves between INFO and the scrape (buffers of the connections talking): this much. */
const USED_TOLERANCE_BYTES = 256 * 1024;

/** A private redis-server with a client of the test's own, and a lanes file for the exporter. */
interface OwnRedis {
  own: RedisProcess;
  redis: IORedis;
  /** REDIS_URL, BULLPEN_PREFIX and LANES_FILE for an exporter on it. */
  env: Record<string, string>;
  /** Stops the server and removes its directory and the lanes file. */
  close(): Promise<void>;
}

async function ownRedis(args: string[]): Promise<OwnRedis> {
  const own = await startRedis(args);
  const redis = new IORedis(own.url, { maxRetriesPerRequest: 3 });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-redis-memory-test-'));
  const lanesFile = path.join(dir, 'lanes.json');
  writeFileSync(lanesFile, JSON.stringify({ lanes: { alpha: { concurrency: 1 } } }));
  return {
    own,
    redis,
    env: { REDIS_URL: own.url, BULLPEN_PREFIX: testPrefix('rm'), LANES_FILE: lanesFile },
    async close() {
      redis.disconnect();
      await own.stop();
      removeDir(own.dir);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('the exporter on Redis memory', () => {
  let setup: OwnRedis;
  let redis: IORedis;
  let exporter: ExporterProcess;
  let server: string;

  const policies = (samples: Sample[]) =>
    samples.filter((s) => s.name === 'bullpen_redis_maxmemory_policy').map((s) => ({ ...s.labels, value: s.value }));

  beforeEach(async () => {
    setup = await ownRedis(['--maxmemory', String(MAX_BYTES), '--maxmemory-policy', 'noeviction']);
    redis = setup.redis;
    server = `127.0.0.1:${setup.own.port}`;
    exporter = await spawnExporter(setup.env);
  });

  afterEach(async () => {
    await exporter?.kill('SIGKILL');
    await setup?.close();
  });

  it('exports used and max bytes and the policy of the server as INFO memory says, and follows a change of policy', async () => {
    // A 4 MiB value makes used memory something the exporter must read, not a constant.
    await redis.set('ballast', 'x'.repeat(4 * 1024 * 1024));
    const before = await readMemory(redis);
    const samples = await exporter.samples();
    const after = await readMemory(redis);

    const used = total(samples, 'bullpen_redis_memory_used_bytes', { server });
    expect(used).toBeGreaterThan(4 * 1024 * 1024);
    expect(used).toBeGreaterThanOrEqual(Math.min(before.usedBytes, after.usedBytes) - USED_TOLERANCE_BYTES);
    expect(used).toBeLessThanOrEqual(Math.max(before.usedBytes, after.usedBytes) + USED_TOLERANCE_BYTES);
    expect(total(samples, 'bullpen_redis_memory_max_bytes', { server })).toBe(MAX_BYTES);
    expect(before.maxBytes).toBe(MAX_BYTES);
    expect(policies(samples)).toEqual([{ server, policy: 'noeviction', value: 1 }]);
    expect(total(samples, 'bullpen_exporter_redis_up')).toBe(1);

    // Gone, the ballast no longer counts: the gauge is read at scrape time.
    await redis.del('ballast');
    const freed = total(await exporter.samples(), 'bullpen_redis_memory_used_bytes', { server });
    expect(freed).toBeLessThan(used - 3 * 1024 * 1024);

    // The next scrape shows the new policy only (the old series goes), and a limit removed as 0.
    await redis.config('SET', 'maxmemory-policy', 'allkeys-lru');
    await redis.config('SET', 'maxmemory', '0');
    const changed = await exporter.samples();
    expect(policies(changed)).toEqual([{ server, policy: 'allkeys-lru', value: 1 }]);
    expect(total(changed, 'bullpen_redis_memory_max_bytes', { server })).toBe(0);
  });

  it('counts an INFO that Redis refuses as a failed read: redis_up 0 and no memory gauges, until it answers again', async () => {
    expect(total(await exporter.samples(), 'bullpen_exporter_redis_up')).toBe(1);
    await redis.acl('SETUSER', 'default', '-info');
    const refused = await waitUntil(
      async () => {
        const s = await exporter.samples();
        return total(s, 'bullpen_exporter_redis_up') === 0 ? s : undefined;
      },
      { what: 'redis_up to drop once INFO is refused' },
    );
    // The gauges read from INFO; bullpen_redis_data_lost_total is a count the exporter keeps itself.
    expect(refused.filter((s) => s.name.startsWith('bullpen_redis_') && s.name !== 'bullpen_redis_data_lost_total')).toEqual([]);

    await redis.acl('SETUSER', 'default', '+info');
    const back = await exporter.samples();
    expect(total(back, 'bullpen_exporter_redis_up')).toBe(1);
    expect(total(back, 'bullpen_redis_memory_max_bytes', { server })).toBe(MAX_BYTES);
  });
});

describe('an exporter started while Redis is full', () => {
  let setup: OwnRedis | undefined;
  let exporter: ExporterProcess | undefined;

  afterEach(async () => {
    await exporter?.kill('SIGKILL');
    await setup?.close();
  });

  it('says Redis refused its lease for memory, stands by, and leads by itself once memory is freed', async () => {
    setup = await ownRedis(['--maxmemory-policy', 'noeviction']);
    const { redis } = setup;
    // Any write that may grow memory is refused: taking the lease is one.
    await redis.config('SET', 'maxmemory', '1');
    exporter = await spawnExporter(setup.env, undefined, { standby: true });
    const e = exporter;
    const refusal = await waitUntil(() => e.logs().find((l) => String(l.msg).includes('leadership lease')), {
      what: 'the exporter to log why it has no lease',
    });
    expect(refusal).toMatchObject({ level: 'warn', error: expect.stringMatching(/^OOM command not allowed/) });
    expect(refusal.msg).toMatch(/^Redis is out of memory \(maxmemory\) and refused the leadership lease/);
    expect(total(await e.samples(), 'bullpen_exporter_leader')).toBe(0);

    await redis.config('SET', 'maxmemory', '0');
    await waitUntil(async () => total(await e.samples(), 'bullpen_exporter_leader') === 1, { what: 'the exporter to take the lease' });
    expect(total(await e.samples(), 'bullpen_redis_memory_max_bytes')).toBe(0);
  });
});
