// Chaos: Redis (append-only, fsync on every write) is SIGKILLed while jobs are being submitted over
// REST and processed, stays down long enough for every job lock to lapse, and is restarted on the
// same port and directory. The API, the workers and the exporter are the real apps as processes
// and must ride it out without a restart: the API answers 503 while Redis is away and 201 again
// once it is back, every job acknowledged with 201 completes (at-least-once: duplicates are
// counted, not refused), and the exporter's totals equal a recount of the lanes' event streams
// and of the jobs in Redis.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Queue } from 'bullmq';
import type IORedis from 'ioredis';
import { attemptsOf, createLaneQueue, createRedis, decodeLaneEvent, laneEventsKey, LANE_EVENT } from '@bullpen/core';
import { testConfig } from './support/config';
import { spawnApi, spawnExporter, spawnWorkerApp, total, type AppProcess } from './support/prometheus';
import { APPEND_ONLY_ALWAYS, removeDir, startRedis, type RedisProcess } from './support/redis-server';
import { testPrefix, waitUntil } from './support/wait';

jest.setTimeout(180_000);

const HANDLERS_DIR = path.resolve(__dirname, 'fixtures/chaos-handlers');
/** The minimum lock: a job held when Redis dies has lost its lock by the time Redis is back. */
const LOCK_MS = 1000;
/** Redis stays down at least this long: twice the lock, so that the restart finds them expired. */
const OUTAGE_MS = 2 * LOCK_MS;
/** Roomy backlogs and retention: neither a 429 nor a trimmed completed job may blur the count. */
const lane = (concurrency: number) => ({
  concurrency,
  lockDurationMs: LOCK_MS,
  attempts: 5,
  maxQueueSize: 100_000,
  retention: { completed: { ageSeconds: 3600, count: 1_000_000 }, failed: { ageSeconds: 3600, count: 1_000_000 } },
});
const LANES = { alpha: lane(6), beta: lane(4) } as const;
type Lane = keyof typeof LANES;
const LANE_NAMES = Object.keys(LANES) as Lane[];
const TENANT_KEY = 'acme-key-0001';
const SUBMITTERS = 4;
/** Jobs acknowledged before the kill, and again after the restart, before the run winds down. */
const ACKED_PER_PHASE = 150;
const WORKER_IDS = ['survivor-1', 'survivor-2'];

/** One REST submission as the client saw it. */
interface Reply {
  lane: Lane;
  startedAt: number;
  endedAt: number;
  /** 0 when the request itself failed (the API dropped the connection or did not answer). */
  status: number;
  contentType: string;
  retryAfter: string | null;
  body: { id?: string; type?: string; code?: string; jobIds?: string[] };
  error?: string;
}

/** A stream entry's `event` field (BullMQ's native names, bullpen's `bp:` names). */
function eventName(fields: readonly string[]): string {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === 'event') return fields[i + 1] as string;
  return '';
}
function field(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

describe('chaos: Redis SIGKILLed and restarted mid-run', () => {
  const prefix = testPrefix('redis-restart');
  const key = `${prefix}:chaos`;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-redis-restart-'));
  const lanesFile = path.join(dir, 'lanes.json');
  writeFileSync(lanesFile, JSON.stringify({ lanes: LANES }));
  let redisServer: RedisProcess;
  let redis: IORedis;
  let api: AppProcess | undefined;
  let exporter: AppProcess | undefined;
  const workers: AppProcess[] = [];
  const apps: AppProcess[] = [];
  const queues = {} as Record<Lane, Queue>;
  /** The submitting clients run while this holds; afterAll clears it too, should the test time out. */
  let submitting = true;

  beforeAll(async () => {
    redisServer = await startRedis(APPEND_ONLY_ALWAYS);
    const base = { REDIS_URL: redisServer.url, BULLPEN_PREFIX: prefix, LANES_FILE: lanesFile, API_KEYS: `acme:${TENANT_KEY}` };
    const config = testConfig({ prefix, env: base });
    redis = createRedis(redisServer.url, 'worker', 'chaos-test');
    for (const name of LANE_NAMES) {
      queues[name] = createLaneQueue(config, name, redis);
      queues[name].on('error', () => undefined); // the outage is expected; reads wait it out
    }
    // Every app that starts is killed in afterAll, even when another failed to start.
    const starting = [
      spawnApi(base),
      spawnExporter(base),
      ...WORKER_IDS.map((id) => spawnWorkerApp({ ...base, WORKER_ID: id, HANDLERS_DIR })),
    ].map((p) => p.then((app) => (apps.push(app), app)));
    const settled = await Promise.allSettled(starting);
    for (const s of settled) if (s.status === 'rejected') throw s.reason;
    const [started, ...rest] = settled.map((s) => (s as PromiseFulfilledResult<AppProcess>).value);
    api = started;
    exporter = rest[0];
    workers.push(...rest.slice(1));
  });

  afterAll(async () => {
    submitting = false;
    await Promise.all(apps.map((app) => app.kill('SIGKILL')));
    await Promise.all(Object.values(queues).map((q) => q.close().catch(() => undefined)));
    redis?.disconnect();
    await redisServer?.stop();
    if (redisServer) removeDir(redisServer.dir);
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps every 201-acknowledged job, answers 503 while Redis is down, and recovers every app without a restart', async () => {
    const apiUrl = (api as AppProcess).url;
    const pids = [api, exporter, ...workers].map((p) => (p as AppProcess).pid);
    const replies: Reply[] = [];
    let sequence = 0;

    const submit = async (name: Lane): Promise<Reply> => {
      const startedAt = Date.now();
      const ms = 5 + (sequence++ % 25);
      try {
        const res = await fetch(`${apiUrl}/v1/lanes/${name}/jobs`, {
          method: 'POST',
          headers: { authorization: `Bearer ${TENANT_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify({ name: 'chaos', data: { ms, key } }),
          signal: AbortSignal.timeout(10_000),
        });
        return {
          lane: name,
          startedAt,
          endedAt: Date.now(),
          status: res.status,
          contentType: res.headers.get('content-type') ?? '',
          retryAfter: res.headers.get('retry-after'),
          body: (await res.json()) as Reply['body'],
        };
      } catch (err) {
        return { lane: name, startedAt, endedAt: Date.now(), status: 0, contentType: '', retryAfter: null, body: {}, error: String(err) };
      }
    };
    // Clients that keep submitting through the outage. After a 503 one backs off briefly, as a
    // client told Retry-After would (a shorter pause, so that the outage is probed often).
    const submitters = Array.from({ length: SUBMITTERS }, async (_, n) => {
      for (let i = 0; submitting; i += 1) {
        const reply = await submit(LANE_NAMES[(n + i) % LANE_NAMES.length] as Lane);
        replies.push(reply);
        if (reply.status !== 201) await new Promise((resolve) => setTimeout(resolve, 25));
      }
    });
    const acked = () => replies.filter((r) => r.status === 201);
    const done = () => redis.scard(`${key}:done`);
    /** The workers whose attempts ended since `ms`: a stream entry id starts with Redis's clock (this host's). */
    const workersRunningSince = async (ms: number): Promise<Set<string>> => {
      const seen = new Set<string>();
      for (const l of LANE_NAMES) {
        for (const [, fields] of await redis.xrange(laneEventsKey(prefix, l), String(ms), '+')) {
          // Failed attempts have an entry each; completed ones travel many to an entry.
          const name = eventName(fields);
          if (name === LANE_EVENT.attempt || name === LANE_EVENT.completedAttempts) seen.add(field(fields, 'worker') ?? '');
        }
      }
      return seen;
    };

    try {
      // Kill Redis while submissions are in flight and jobs are being processed.
      await waitUntil(
        async () =>
          acked().length >= ACKED_PER_PHASE &&
          (await done()) >= ACKED_PER_PHASE / 3 &&
          (await Promise.all(LANE_NAMES.map((l) => queues[l].getActiveCount()))).some((n) => n > 0),
        { timeoutMs: 30_000, what: 'jobs to be submitted and processed before the kill' },
      );
      await redisServer.stop();
      const killedAt = Date.now();

      // While it is down: 503s, the API not ready, the exporter seeing Redis gone.
      await waitUntil(
        async () => {
          const refused = replies.filter((r) => r.startedAt > killedAt && r.status === 503).length;
          const ready = (await fetch(`${apiUrl}/readyz`)).status;
          const exporterSeesRedis = total(await (exporter as AppProcess).samples(), 'bullpen_exporter_redis_up');
          return refused >= 20 && ready === 503 && exporterSeesRedis === 0 && Date.now() - killedAt >= OUTAGE_MS;
        },
        { timeoutMs: 20_000, intervalMs: 50, what: 'the apps to see the outage' },
      );

      const restartingAt = Date.now();
      await redisServer.restart();
      const recovered = await waitUntil(() => acked().find((r) => r.startedAt > restartingAt), {
        timeoutMs: 30_000,
        what: 'the API to answer 201 again without a restart',
      });
      // Submitting goes on until every worker process has run jobs again.
      await waitUntil(
        async () =>
          acked().filter((r) => r.startedAt > restartingAt).length >= ACKED_PER_PHASE &&
          (await workersRunningSince(restartingAt)).size === WORKER_IDS.length,
        { timeoutMs: 30_000, intervalMs: 200, what: 'jobs acknowledged, and run by every worker, after the restart' },
      );
      submitting = false;
      await Promise.all(submitters);

      // Every job in Redis ends completed, and the handler finished each at least once.
      const existing = async () =>
        Object.fromEntries(
          await Promise.all(
            LANE_NAMES.map(async (l) => [l, await queues[l].getRanges(['completed', 'failed', 'wait', 'active', 'delayed', 'prioritized'], 0, -1)] as const),
          ),
        ) as Record<Lane, string[]>;
      await waitUntil(
        async () => {
          const counts = await Promise.all(LANE_NAMES.map((l) => queues[l].getJobCountByTypes('wait', 'active', 'delayed', 'prioritized')));
          const jobs = Object.values(await existing()).reduce((n, ids) => n + ids.length, 0);
          return counts.every((n) => n === 0) && (await done()) >= jobs;
        },
        { timeoutMs: 45_000, intervalMs: 100, what: 'every job to finish after the restart' },
      );

      const duringOutage = replies.filter((r) => r.startedAt > killedAt && r.endedAt < restartingAt);
      const refused = replies.filter((r) => r.status === 503);
      const jobs = await existing();
      const ackedIds = new Set(acked().map((r) => `${r.lane}:${r.body.id}`));
      const unknownIds = new Set(refused.filter((r) => r.body.code === 'redis_timeout').flatMap((r) => (r.body.jobIds ?? []).map((id) => `${r.lane}:${id}`)));
      const existingIds = LANE_NAMES.flatMap((l) => jobs[l].map((id) => `${l}:${id}`));
      const doneIds = new Set(await redis.smembers(`${key}:done`));
      const runs = (await redis.hvals(`${key}:runs`)).map(Number);

      // The API: only 201 or a 503 problem document, 503 throughout the outage, back by itself.
      expect(replies.filter((r) => r.status !== 201 && r.status !== 503)).toEqual([]);
      for (const r of refused) {
        expect({ type: r.contentType.split(';')[0], retryAfter: r.retryAfter }).toEqual({ type: 'application/problem+json', retryAfter: '1' });
        expect(['redis_unavailable', 'redis_timeout']).toContain(r.body.code);
        expect(r.body.type).toBe(`urn:bullpen:problem:${r.body.code}`);
        if (r.body.code === 'redis_timeout') expect(r.body.jobIds).toHaveLength(1);
      }
      expect(duringOutage.length).toBeGreaterThanOrEqual(20);
      expect(duringOutage.filter((r) => r.status !== 503)).toEqual([]);
      expect((await fetch(`${apiUrl}/readyz`)).status).toBe(200);
      const apiLog = (api as AppProcess).logs().map((l) => l.msg);
      expect(apiLog.filter((m) => m === 'redis connection lost; requests answer 503 until it is back')).toHaveLength(1);
      expect(apiLog.filter((m) => m === 'redis ready').length).toBeGreaterThanOrEqual(2);

      // No acknowledged job lost; none the API called not enqueued turned up; none failed.
      expect([...ackedIds].filter((id) => !existingIds.includes(id))).toEqual([]);
      expect(existingIds.filter((id) => !ackedIds.has(id) && !unknownIds.has(id))).toEqual([]);
      expect([...ackedIds].filter((id) => !doneIds.has(id))).toEqual([]);
      expect(existingIds.filter((id) => !doneIds.has(id))).toEqual([]);
      for (const l of LANE_NAMES) {
        expect(await queues[l].getJobCounts('completed', 'failed')).toEqual({ completed: jobs[l].length, failed: 0 });
      }

      // The same processes, still up, and every worker ran jobs after the restart.
      expect([api, exporter, ...workers].map((p) => [(p as AppProcess).pid, (p as AppProcess).exitCode()])).toEqual(pids.map((pid) => [pid, null]));
      expect([...(await workersRunningSince(restartingAt))].sort()).toEqual([...WORKER_IDS].sort());
      // Redis came back with its data: no app says it lost any (test/redis-data-loss.test.ts has the loss).
      for (const app of [api, exporter, ...workers] as AppProcess[]) {
        expect(app.logs().filter((l) => l.msg === 'redis lost bullpen data')).toEqual([]);
        expect(total(await app.samples(), 'bullpen_redis_data_lost_total')).toBe(0);
      }

      // The exporter: its totals equal a recount of the streams and of the jobs in Redis.
      const recount = await Promise.all(
        LANE_NAMES.map(async (l) => {
          const byEvent: Record<string, number> = {};
          let attempts = 0;
          let start = '-';
          for (;;) {
            const entries = (await redis.xrange(laneEventsKey(prefix, l), start, '+', 'COUNT', 1000)) as Array<[string, string[]]>;
            for (const [, fields] of entries) {
              const name = eventName(fields);
              byEvent[name] = (byEvent[name] ?? 0) + 1;
              attempts += attemptsOf(decodeLaneEvent(fields)).length;
            }
            if (entries.length < 1000) break;
            start = `(${(entries[entries.length - 1] as [string, string[]])[0]}`;
          }
          const info = (await redis.xinfo('STREAM', laneEventsKey(prefix, l))) as unknown[];
          return { byEvent, attempts, entriesAdded: Number(info[info.indexOf('entries-added') + 1]), length: Number(info[info.indexOf('length') + 1]) };
        }),
      );
      const expected = LANE_NAMES.map((l, i) => {
        const r = recount[i] as (typeof recount)[number];
        return {
          lane: l,
          enqueued: jobs[l].length,
          completed: jobs[l].length,
          failed: 0,
          attempts: r.attempts,
          stalled: r.byEvent.stalled ?? 0,
          processed: r.entriesAdded,
          lost: 0,
        };
      });
      for (const [i, r] of recount.entries()) {
        // Nothing trimmed, so the recount sees every entry; the streams agree with the jobs.
        expect(r.length).toBe(r.entriesAdded);
        expect([r.byEvent.added, r.byEvent.completed]).toEqual([expected[i]?.enqueued, expected[i]?.completed]);
      }
      const exported = async () => {
        const s = await (exporter as AppProcess).samples();
        return LANE_NAMES.map((l) => ({
          lane: l,
          enqueued: total(s, 'bullpen_jobs_enqueued_total', { lane: l }),
          completed: total(s, 'bullpen_jobs_completed_total', { lane: l }),
          failed: total(s, 'bullpen_jobs_failed_total', { lane: l }),
          attempts: total(s, 'bullpen_job_attempts_total', { lane: l }),
          stalled: total(s, 'bullpen_jobs_stalled_total', { lane: l }),
          processed: total(s, 'bullpen_exporter_events_processed_total', { lane: l }),
          lost: total(s, 'bullpen_exporter_events_lost_total', { lane: l }),
        }));
      };
      await waitUntil(async () => JSON.stringify(await exported()) === JSON.stringify(expected), {
        timeoutMs: 20_000,
        what: 'the exporter to count every stream entry once',
      }).catch(() => undefined);
      expect(await exported()).toEqual(expected);

      const duplicates = runs.filter((n) => n > 1).reduce((sum, n) => sum + n - 1, 0);
      const stalled = expected.reduce((sum, e) => sum + e.stalled, 0);
      process.stdout.write(
        `chaos redis restart: ${ackedIds.size} acked (201), ${existingIds.length} jobs in Redis, ` +
          `${refused.length} refused (503: ${refused.length - unknownIds.size} redis_unavailable, ${unknownIds.size} redis_timeout of which ` +
          `${[...unknownIds].filter((id) => existingIds.includes(id)).length} enqueued), outage ${restartingAt - killedAt} ms, ` +
          `first 201 ${recovered.endedAt - restartingAt} ms after the restart began, ${runs.reduce((a, b) => a + b, 0)} handler runs, ` +
          `${duplicates} duplicates, ${stalled} stalled\n`,
      );
    } finally {
      submitting = false;
      await Promise.all(submitters);
    }
  });
});
