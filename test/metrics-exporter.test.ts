// The exporter process against a real Redis: series at 0 before any event, scrape-time queue
// state, events lost to a trimmed stream (metric and log line), two exporters on one prefix (one
// leads, the other stands by and takes over, every event counted once), and a Redis outage. (metrics-pipeline.test.ts drives a full workload.)
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Queue, UnrecoverableError, Worker } from 'bullmq';
import IORedis from 'ioredis';
import { encodeLaneEvent, ERROR_CLASSES, formatAttemptLogRow, LANE_EVENT, JOB_FIELD, jobKeys, STALLED_OUT_REASON, laneEventsKey, lanePrefix, QUEUE_JOB_STATES, wrapJobData } from '@bullpen/core';
import { cleanupPrefix } from './support/config';
import { spawnExporter, total, type ExporterProcess, type Sample } from './support/prometheus';
import { startRedis, type RedisProcess } from './support/redis-server';
import { redisUrl, testPrefix, waitUntil } from './support/wait';

const LANES = {
  lanes: {
    alpha: { concurrency: 4, maxQueueSize: 500, globalConcurrency: 6, timeoutMs: 120_000 },
    beta: { concurrency: 2 },
  },
};

describe('the exporter process', () => {
  let dir: string;
  let lanesFile: string;
  let prefix: string;
  let redis: IORedis;
  const exporters: ExporterProcess[] = [];
  const closers: Array<() => Promise<unknown>> = [];

  const env = (extra: Record<string, string> = {}) => ({
    REDIS_URL: redisUrl(),
    BULLPEN_PREFIX: prefix,
    LANES_FILE: lanesFile,
    ...extra,
  });
  const start = async (extra: Record<string, string> = {}) => {
    const exporter = await spawnExporter(env(extra));
    exporters.push(exporter);
    return exporter;
  };
  const queue = (lane: string, maxLen?: number) => {
    const q = new Queue(lane, {
      connection: { url: redisUrl() } as never,
      prefix: lanePrefix(prefix, lane),
      ...(maxLen ? { streams: { events: { maxLen } } } : {}),
    });
    closers.push(() => q.close());
    return q;
  };
  const entriesAdded = async (lane: string): Promise<number> => {
    const info = (await redis.xinfo('STREAM', laneEventsKey(prefix, lane))) as unknown[];
    return Number(info[info.indexOf('entries-added') + 1]);
  };

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-exporter-test-'));
    lanesFile = path.join(dir, 'lanes.json');
    writeFileSync(lanesFile, JSON.stringify(LANES));
    prefix = testPrefix('mx');
    redis = new IORedis(redisUrl(), { maxRetriesPerRequest: 3 });
  });

  afterEach(async () => {
    await Promise.all(exporters.splice(0).map((e) => e.kill('SIGKILL')));
    for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
    await cleanupPrefix(prefix);
    redis.disconnect();
    rmSync(dir, { recursive: true, force: true });
  });

  it('exports every series alerts rely on at 0 before the first event, and the lane limits', async () => {
    const exporter = await start();
    const samples = await exporter.samples();
    const has = (name: string, labels: Record<string, string>, value: number) => {
      const found = samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
      expect(`${name}${JSON.stringify(labels)} = ${found?.value}`).toBe(`${name}${JSON.stringify(labels)} = ${value}`);
    };
    for (const lane of ['alpha', 'beta']) {
      has('bullpen_jobs_completed_total', { lane }, 0);
      has('bullpen_jobs_stalled_total', { lane }, 0);
      has('bullpen_exporter_events_lost_total', { lane }, 0);
      has('bullpen_exporter_events_lost_last_timestamp_seconds', { lane }, 0);
      has('bullpen_exporter_negative_timings_total', { lane }, 0);
      has('bullpen_jobs_rejected_total', { lane, reason: 'queue_full' }, 0);
      has('bullpen_retry_budget_exhausted_total', { lane, action: 'defer' }, 0);
      has('bullpen_retry_budget_exhausted_total', { lane, action: 'fail' }, 0);
      has('bullpen_jobs_enqueued_total', { lane, job_name: 'noop' }, 0);
      has('bullpen_jobs_enqueued_total', { lane, job_name: 'other' }, 0);
      for (const error_class of ERROR_CLASSES) {
        has('bullpen_jobs_failed_total', { lane, error_class }, 0);
        has('bullpen_jobs_dead_lettered_total', { lane, error_class }, 0);
        has('bullpen_job_attempts_failed_total', { lane, error_class }, 0);
        has('bullpen_jobs_retried_total', { lane, error_class }, 0);
      }
      for (const state of QUEUE_JOB_STATES) has('bullpen_queue_jobs', { lane, state }, 0);
      has('bullpen_queue_oldest_waiting_timestamp_seconds', { lane }, 0);
      has('bullpen_queue_paused', { lane }, 0);
      has('bullpen_queue_workers', { lane }, 0);
      has('bullpen_exporter_event_lag_seconds', { lane }, 0);
    }
    has('bullpen_lane_concurrency', { lane: 'alpha' }, 4);
    has('bullpen_lane_concurrency', { lane: 'beta' }, 2);
    has('bullpen_lane_max_queue_size', { lane: 'alpha' }, 500);
    has('bullpen_lane_max_queue_size', { lane: 'beta' }, 1000);
    has('bullpen_lane_timeout_seconds', { lane: 'alpha' }, 120);
    has('bullpen_lane_timeout_seconds', { lane: 'beta' }, 30);
    has('bullpen_lane_global_concurrency', { lane: 'alpha' }, 6);
    expect(samples.some((s) => s.name === 'bullpen_lane_global_concurrency' && s.labels.lane === 'beta')).toBe(false);
    has('bullpen_exporter_up', {}, 1);
    has('bullpen_exporter_redis_up', {}, 1);
    const health = (await (await fetch(`${exporter.url}/healthz`)).json()) as Record<string, unknown>;
    expect(health).toMatchObject({ ok: true, reading: true, redis: 'ready' });
  });

  it('counts a job BullMQ failed for stalling as stalled, not as the class of an attempt before', async () => {
    const exporter = await start();
    const beta = queue('beta');
    const taker = new Worker('beta', null, { connection: { url: redisUrl() } as never, prefix: lanePrefix(prefix, 'beta'), autorun: false });
    closers.push(() => taker.close(true));
    const job = await beta.add('noop', wrapJobData({}, { v: 1, tenant: 'acme' }), { attempts: 3 });
    // An earlier attempt failed on the network and was retried; the job then stalled out, which
    // BullMQ records with its own reason before any processor runs, and no attempt row.
    const row = formatAttemptLogRow({ attempt: 1, errorClass: 'network', message: 'ECONNRESET', delayMs: 100, worker: 'w1', ts: Date.now() });
    await redis.rpush(jobKeys(prefix, 'beta', job.id!).logs, row);
    const taken = await taker.getNextJob('token-1');
    await taken!.moveToFailed(new UnrecoverableError(STALLED_OUT_REASON), 'token-1', false);

    const failed = (samples: Sample[], error_class: string) => total(samples, 'bullpen_jobs_failed_total', { lane: 'beta', error_class });
    const samples = await waitUntil(
      async () => {
        const s = await exporter.samples();
        return failed(s, 'stalled') + failed(s, 'network') > 0 ? s : undefined;
      },
      { what: 'the failure to be counted' },
    );
    expect([failed(samples, 'stalled'), failed(samples, 'network')]).toEqual([1, 0]);
    expect(total(samples, 'bullpen_jobs_dead_lettered_total', { lane: 'beta', error_class: 'stalled' })).toBe(1);
  });

  it('reads jobs per state, the oldest waiting enqueue time, paused and workers from Redis at scrape time', async () => {
    const exporter = await start();
    const alpha = queue('alpha');
    const taker = new Worker('alpha', null, { connection: { url: redisUrl() } as never, prefix: lanePrefix(prefix, 'alpha'), autorun: false });
    closers.push(() => taker.close(true));
    const take = async () => {
      const job = await taker.getNextJob('token-1');
      if (!job) throw new Error('no job to take');
      return job;
    };
    await alpha.add('noop', wrapJobData({}, { v: 1, tenant: 'acme' }), { attempts: 1 });
    await (await take()).moveToCompleted('done', 'token-1', false);
    await alpha.add('noop', wrapJobData({}, { v: 1, tenant: 'acme' }), { attempts: 1 });
    await (await take()).moveToFailed(new Error('boom'), 'token-1', false);
    await alpha.add('noop', wrapJobData({}, { v: 1, tenant: 'acme' }), { attempts: 1 });
    await take(); // stays active
    await taker.close(true); // its connection would count as a worker of the lane

    const now = Date.now();
    await alpha.add('noop', {}, { timestamp: now - 60_000 }); // the oldest at the tail of wait
    await alpha.add('noop', {}, { timestamp: now - 30_000 });
    await alpha.add('noop', {}, { timestamp: now - 10_000 });
    await alpha.add('noop', {}, { delay: 1_800_000, timestamp: now - 900_000 }); // older, but delayed: not waiting
    await alpha.add('noop', {}, { delay: 600_000 });
    const prioritized = await alpha.add('noop', {}, { priority: 5, timestamp: now - 90_000 }); // next in the prioritized set
    await alpha.pause();
    const serving = new Worker('alpha', async () => undefined, { connection: { url: redisUrl() } as never, prefix: lanePrefix(prefix, 'alpha'), name: 'w1' });
    serving.on('error', () => undefined);
    closers.push(() => serving.close(true));

    const lane = (samples: Sample[], name: string, extra: Record<string, string> = {}) => total(samples, name, { lane: 'alpha', ...extra });
    const samples = await waitUntil(
      async () => {
        const s = await exporter.samples();
        return lane(s, 'bullpen_queue_workers') === 1 ? s : undefined;
      },
      { what: 'the worker connection to be counted' },
    );
    const states = Object.fromEntries(QUEUE_JOB_STATES.map((state) => [state, lane(samples, 'bullpen_queue_jobs', { state })]));
    expect(states).toEqual({
      waiting: 3,
      paused: 0,
      delayed: 2,
      prioritized: 1,
      active: 1,
      completed: 1,
      failed: 1,
      'waiting-children': 0,
    });
    expect(lane(samples, 'bullpen_queue_oldest_waiting_timestamp_seconds')).toBe((now - 90_000) / 1000);
    expect(lane(samples, 'bullpen_queue_paused')).toBe(1);
    // A job redriven from the dead letters waits in line from its redrive: the tail of wait is
    // now the one that has waited longest.
    await redis.hset(jobKeys(prefix, 'alpha', prioritized.id!).job, JOB_FIELD.redrivenAt, now - 20_000);
    expect(lane(await exporter.samples(), 'bullpen_queue_oldest_waiting_timestamp_seconds')).toBe((now - 60_000) / 1000);
    expect(total(samples, 'bullpen_queue_workers', { lane: 'beta' })).toBe(0);
    expect(await alpha.getWorkersCount()).toBe(1); // BullMQ's own count agrees

    await alpha.resume();
    await alpha.obliterate({ force: true });
    const after = await exporter.samples();
    expect(lane(after, 'bullpen_queue_paused')).toBe(0);
    expect(lane(after, 'bullpen_queue_jobs', { state: 'waiting' })).toBe(0);
    expect(lane(after, 'bullpen_queue_oldest_waiting_timestamp_seconds')).toBe(0);
  });

  it('reads the oldest waiting time from when the job became eligible: after its delay, after the backoff of its last attempt', async () => {
    const exporter = await start();
    const now = Date.now();
    // alpha: created 50 s ago with a delay of 40 s, due 10 s ago and promoted to wait.
    const delayed = await queue('alpha').add('noop', {}, { delay: 40_000, timestamp: now - 50_000 });
    await delayed.promote();
    // beta: created 100 s ago; its first attempt failed 25 s ago with a backoff of 5 s, so it
    // has waited 20 s, not 100 (a later row of a stall chose no delay and is passed over).
    const retried = await queue('beta').add('noop', {}, { attempts: 3, timestamp: now - 100_000 });
    const logs = jobKeys(prefix, 'beta', retried.id!).logs;
    await redis.rpush(logs, formatAttemptLogRow({ attempt: 1, errorClass: 'network', message: 'ECONNRESET', delayMs: 5_000, worker: 'w1', ts: now - 25_000 }));
    await redis.rpush(logs, formatAttemptLogRow({ attempt: 2, errorClass: 'stalled', message: 'stalled', delayMs: null, worker: 'w2', ts: now - 1_000 }));
    const samples = await exporter.samples();
    expect(total(samples, 'bullpen_queue_jobs', { lane: 'alpha', state: 'waiting' })).toBe(1);
    expect(total(samples, 'bullpen_queue_oldest_waiting_timestamp_seconds', { lane: 'alpha' })).toBe((now - 10_000) / 1000);
    expect(total(samples, 'bullpen_queue_oldest_waiting_timestamp_seconds', { lane: 'beta' })).toBe((now - 20_000) / 1000);
  });

  it('counts events trimmed from a stream before it read them as lost, says so in a log line, and loses nothing else', async () => {
    const redisNow = async () => {
      const [seconds, micros] = await redis.time();
      return Number(seconds) + Number(micros) / 1e6;
    };
    const alpha = queue('alpha', 200);
    let exporter = await start();
    await alpha.addBulk(Array.from({ length: 10 }, () => ({ name: 'noop', data: {} })));
    await waitUntil(async () => total(await exporter.samples(), 'bullpen_jobs_enqueued_total', { lane: 'alpha' }) === 10, {
      what: 'the first 10 jobs to be counted',
    });
    await exporter.kill('SIGTERM');

    // While the exporter is away, 2,000 entries are added to a stream kept at about 200.
    for (let i = 0; i < 10; i += 1) await alpha.addBulk(Array.from({ length: 100 }, () => ({ name: 'noop', data: {} })));
    expect(await redis.xlen(laneEventsKey(prefix, 'alpha'))).toBeLessThan(1000);

    const restartedAt = await redisNow();
    exporter = await start();
    const added = await entriesAdded('alpha');
    const samples = await waitUntil(
      async () => {
        const s = await exporter.samples();
        const processed = total(s, 'bullpen_exporter_events_processed_total', { lane: 'alpha' });
        return processed + total(s, 'bullpen_exporter_events_lost_total', { lane: 'alpha' }) === added ? s : undefined;
      },
      { what: 'every entry to be counted or declared lost' },
    );
    const lost = total(samples, 'bullpen_exporter_events_lost_total', { lane: 'alpha' });
    expect(lost).toBeGreaterThan(1000);
    const enqueued = total(samples, 'bullpen_jobs_enqueued_total', { lane: 'alpha' });
    expect(enqueued).toBeGreaterThan(10);
    expect(enqueued).toBeLessThan(1010);
    const warning = exporter.logs().find((l) => typeof l.msg === 'string' && l.msg.startsWith('events lost'));
    expect(warning).toMatchObject({ level: 'warn', lane: 'alpha', lost });
    expect(total(samples, 'bullpen_exporter_events_lost_total', { lane: 'beta' })).toBe(0);

    // The loss was counted before the first scrape, so the counter shows Prometheus no rise: the
    // time it was found, on Redis's clock, is what alerts on it...
    const lostAt = total(samples, 'bullpen_exporter_events_lost_last_timestamp_seconds', { lane: 'alpha' });
    expect(lostAt).toBeGreaterThanOrEqual(Math.floor(restartedAt * 1000) / 1000);
    expect(lostAt).toBeLessThanOrEqual(await redisNow());
    expect(total(samples, 'bullpen_exporter_events_lost_last_timestamp_seconds', { lane: 'beta' })).toBe(0);
    // ...and an exporter that comes back after it (or another taking over) serves it from Redis.
    await exporter.kill('SIGKILL');
    exporter = await start();
    const again = await waitUntil(
      async () => {
        const s = await exporter.samples();
        return total(s, 'bullpen_exporter_events_lost_total', { lane: 'alpha' }) === lost ? s : undefined;
      },
      { what: 'the restarted exporter to serve the saved totals' },
    );
    expect(total(again, 'bullpen_exporter_events_lost_last_timestamp_seconds', { lane: 'alpha' })).toBe(lostAt);
    expect(total(again, 'bullpen_exporter_events_lost_total', { lane: 'alpha' })).toBe(lost);
  });

  it('serves after a restart in place histogram sums no lower than before it, as Redis keeps them', async () => {
    let exporter = await start();
    const sums = (samples: Sample[]) =>
      Object.fromEntries(
        samples.filter((x) => x.name.endsWith('_sum') && x.labels.lane === 'alpha').map((x) => [`${x.name}${JSON.stringify(x.labels)}`, x.value]),
      );
    // Attempts of 0.1 s and 0.2 s, one batch each: the exporter's own addition makes
    // 0.30000000000000004 of them, while Redis (HINCRBYFLOAT) keeps the total as the text "0.3",
    // which is what a restart reloads.
    let counted = 0;
    for (let round = 0; round < 10; round += 1) {
      const ms = round % 2 === 0 ? 100 : 200;
      await redis.xadd(
        laneEventsKey(prefix, 'alpha'),
        '*',
        ...encodeLaneEvent({
          event: LANE_EVENT.attempt,
          jobId: `j${round}`,
          name: 'noop',
          tenant: 'acme',
          attempt: 1,
          outcome: 'failed',
          errorClass: 'network',
          willRetry: true,
          runMs: ms,
          waitMs: ms,
          delayMs: ms,
          worker: 'w1',
        }),
      );
      counted += 1;
      await waitUntil(async () => total(await exporter.samples(), 'bullpen_job_attempts_total', { lane: 'alpha' }) === counted, {
        what: `attempt ${round} to be counted`,
      });
    }
    const before = sums(await exporter.samples());
    expect(Object.keys(before).length).toBeGreaterThanOrEqual(3);
    await exporter.kill('SIGTERM');
    exporter = await start();
    const after = sums(await exporter.samples());
    const lower = Object.entries(before)
      .filter(([series, value]) => !((after[series] ?? -Infinity) >= value))
      .map(([series, value]) => `${series}: ${value} → ${after[series]}`);
    expect(lower).toEqual([]);
  });

  describe('with two exporters on one prefix', () => {
    const added = async () => ({ alpha: await entriesAdded('alpha'), beta: await entriesAdded('beta') });
    const countsAll = async (exporter: ExporterProcess, expected: { alpha: number; beta: number }) => {
      const s = await exporter.samples();
      return (
        total(s, 'bullpen_exporter_events_processed_total', { lane: 'alpha' }) === expected.alpha &&
        total(s, 'bullpen_exporter_events_processed_total', { lane: 'beta' }) === expected.beta
      );
    };
    const addJobs = async (rounds: number) => {
      const alpha = queue('alpha');
      const beta = queue('beta');
      for (let i = 0; i < rounds; i += 1) {
        await alpha.addBulk(Array.from({ length: 30 }, () => ({ name: 'noop', data: {} })));
        await beta.addBulk(Array.from({ length: 20 }, () => ({ name: 'http', data: {} })));
      }
    };
    const isLeader = async (exporter: ExporterProcess) => total(await exporter.samples(), 'bullpen_exporter_leader') === 1;
    /** A leader, then a second exporter that stands by, both with a lease of `leaseMs`. */
    const startPair = async (leaseMs: number) => {
      const lease = { EXPORTER_LEADER_LEASE_MS: String(leaseMs) };
      const a = await start(lease);
      const b = await spawnExporter(env(lease), undefined, { standby: true });
      exporters.push(b);
      return [a, b] as const;
    };

    it('serves the job metrics from one of them only, and the other takes over with the totals when it dies', async () => {
      const [a, b] = await startPair(1500);
      await addJobs(5);
      const first = await added();
      await waitUntil(() => countsAll(a, first), { what: 'the leader to count every entry' });
      // The standby says what it is and serves no job metric, so a sum() over both is the truth.
      const standby = await b.samples();
      expect(standby.filter((x) => x.name.startsWith('bullpen_') && x.name !== 'bullpen_exporter_leader')).toEqual([]);
      expect(total(standby, 'bullpen_exporter_leader')).toBe(0);
      expect(total(await a.samples(), 'bullpen_exporter_leader')).toBe(1);
      expect(await (await fetch(`${b.url}/healthz`)).json()).toMatchObject({ ok: true, role: 'standby', reading: false });

      // Killed, the leader cannot release its lease: the standby takes it once it expires.
      await a.kill('SIGKILL');
      await addJobs(5);
      const second = await added();
      await waitUntil(() => countsAll(b, second), { timeoutMs: 20_000, what: 'the standby to take over and count every entry once' });
      const s = await b.samples();
      expect(total(s, 'bullpen_exporter_leader')).toBe(1);
      expect(total(s, 'bullpen_jobs_enqueued_total', { lane: 'alpha', job_name: 'noop' })).toBe(300);
      expect(total(s, 'bullpen_jobs_enqueued_total', { lane: 'beta', job_name: 'http' })).toBe(200);
    });

    it('hands the lead over at once when the leader stops cleanly', async () => {
      // A lease far longer than the test: only its release lets the standby take over.
      const [a, b] = await startPair(600_000);
      await a.kill('SIGTERM');
      expect(a.exitCode()).toBe(0);
      await addJobs(2);
      const expected = await added();
      await waitUntil(() => countsAll(b, expected), { timeoutMs: 30_000, what: 'the standby to take over from a leader that released its lease' });
      expect(await isLeader(b)).toBe(true);
    });

    it('stops a leader that was paused past its lease once it wakes, and every event is still counted once', async () => {
      const [a, b] = await startPair(1500);
      await addJobs(3);
      process.kill(a.pid, 'SIGSTOP');
      try {
        await waitUntil(() => isLeader(b), { timeoutMs: 20_000, what: 'the standby to take the lease of the paused leader' });
        await addJobs(3);
      } finally {
        process.kill(a.pid, 'SIGCONT');
      }
      // Woken, it finds the lease taken: it stops serving and exits, to be restarted as a standby.
      await waitUntil(() => a.exitCode() !== null, { timeoutMs: 20_000, what: 'the woken leader to exit' });
      expect(a.exitCode()).toBe(1);
      expect(a.logs().some((l) => l.msg === 'another exporter took the leadership lease: this one stops serving')).toBe(true);
      const expected = await added();
      await waitUntil(() => countsAll(b, expected), { what: 'the new leader to count every entry once' });
      const s = await b.samples();
      expect(total(s, 'bullpen_jobs_enqueued_total', { lane: 'alpha', job_name: 'noop' })).toBe(180);
      expect(total(s, 'bullpen_jobs_enqueued_total', { lane: 'beta', job_name: 'http' })).toBe(120);
    });
  });

  describe('with a Redis that goes away', () => {
    let own: RedisProcess;
    beforeEach(async () => {
      own = await startRedis(['--appendonly', 'yes', '--appendfsync', 'always']);
    });
    afterEach(async () => {
      await own.stop();
      rmSync(own.dir, { recursive: true, force: true });
    });

    it('exits promptly and cleanly on SIGTERM while Redis is away', async () => {
      const exporter = await start({ REDIS_URL: own.url });
      await own.stop();
      await waitUntil(async () => total(await exporter.samples(), 'bullpen_exporter_redis_up') === 0, { what: 'redis_up to drop' });
      const started = Date.now();
      await exporter.kill('SIGTERM');
      expect(Date.now() - started).toBeLessThan(5000);
      expect(exporter.logs().some((l) => l.msg === 'exporter stopping')).toBe(true);
      expect(exporter.exitCode()).toBe(0);
    });

    it('still answers /metrics, with redis_up 0 and no queue gauges, and counts what happens after Redis is back', async () => {
      const exporter = await start({ REDIS_URL: own.url });
      const q = new Queue('alpha', { connection: { url: own.url } as never, prefix: lanePrefix(prefix, 'alpha') });
      q.on('error', () => undefined);
      await q.addBulk(Array.from({ length: 5 }, () => ({ name: 'noop', data: {} })));
      await waitUntil(async () => total(await exporter.samples(), 'bullpen_jobs_enqueued_total', { lane: 'alpha' }) === 5, {
        what: 'the first jobs to be counted',
      });

      await own.stop();
      const down = await waitUntil(
        async () => {
          const started = Date.now();
          const s = await exporter.samples();
          expect(Date.now() - started).toBeLessThan(3000);
          return total(s, 'bullpen_exporter_redis_up') === 0 ? s : undefined;
        },
        { what: 'redis_up to drop to 0' },
      );
      expect(down.some((s) => s.name === 'bullpen_queue_jobs')).toBe(false);
      expect(total(down, 'bullpen_jobs_enqueued_total', { lane: 'alpha' })).toBe(5);
      expect((await fetch(`${exporter.url}/healthz`)).status).toBe(200);

      await own.restart();
      await waitUntil(async () => total(await exporter.samples(), 'bullpen_exporter_redis_up') === 1, { what: 'redis_up to return' });
      await q.addBulk(Array.from({ length: 5 }, () => ({ name: 'noop', data: {} })));
      await waitUntil(async () => total(await exporter.samples(), 'bullpen_jobs_enqueued_total', { lane: 'alpha' }) === 10, {
        what: 'jobs added after the outage to be counted',
      });
      await q.close();
      await cleanupPrefix(prefix, own.url);
    });
  });
});
