// The memory guard wired into the runtime: over WORKER_MAX_RSS_MB every lane stops taking jobs
// (active ones finish), and below 90% of it they take jobs again. Memory is read through an
// injected sampler so the test can move RSS across the thresholds.
import { Writable } from 'node:stream';
import winston from 'winston';
import { JOB_FIELD, jobKeys } from '@bullpen/core';
import { defineHandler } from '../apps/worker/src/handler';
import { deferred, waitUntil } from './support/wait';
import { startWorkerHarness, type WorkerHarness } from './fixtures/worker-harness';

const MiB = 1024 * 1024;

describe('the memory guard', () => {
  let harness: WorkerHarness | undefined;
  afterEach(async () => {
    await harness?.close();
    harness = undefined;
  });

  it('pauses intake on all lanes over the RSS limit, lets active jobs finish, and resumes below 90% of it', async () => {
    let rss = 40 * MiB;
    let heapUsed = 10 * MiB;
    let samples = 0;
    harness = await startWorkerHarness({
      lanesFile: { lanes: { a: { concurrency: 2 }, b: { concurrency: 2 } } },
      env: { WORKER_MAX_RSS_MB: '64', WORKER_HEAP_WARN_MB: '32' },
      memory: {
        intervalMs: 20,
        sample: () => {
          samples += 1;
          return { rss, heapUsed };
        },
      },
    });
    const logs = captureLogs(harness);
    const h = harness;
    /** Resolves once the guard has sampled memory `n` more times. */
    const moreSamples = (n: number) => {
      const target = samples + n;
      return waitUntil(() => samples >= target, { what: `${n} more memory samples` });
    };
    expect(h.runtime.memoryState).toMatchObject({ paused: false, maxRssBytes: 64 * MiB, resumeBelowBytes: 0.9 * 64 * MiB });

    const active = await h.add('a', 'sleep', { ms: 400 });
    await h.waitForEvent('job:started', (e) => e.jobId === active);
    rss = 70 * MiB;
    const paused = await h.waitForEvent('memory:paused', () => true);
    expect(paused).toMatchObject({ paused: true, rssBytes: 70 * MiB });
    expect(h.runtime.memoryState.paused).toBe(true);

    const waiting: Array<[string, string]> = [];
    for (const lane of ['a', 'b', 'b']) waiting.push([lane, await h.add(lane, 'noop', {})]);
    // The job that was running when intake stopped still finishes.
    await h.waitForEvent('job:completed', (e) => e.jobId === active);
    // Under the limit but above 90% of it: still paused (no flapping), and nothing was taken.
    rss = 60 * MiB;
    await moreSamples(10);
    expect(h.runtime.memoryState.paused).toBe(true);
    for (const [lane, id] of waiting) expect(h.events['job:started'].some((e) => e.lane === lane && e.jobId === id)).toBe(false);
    expect(await h.queue('a').getJobCounts('wait', 'active')).toEqual({ wait: 1, active: 0 });
    expect(await h.queue('b').getJobCounts('wait', 'active')).toEqual({ wait: 2, active: 0 });

    rss = 50 * MiB;
    await h.waitForEvent('memory:resumed', () => true);
    expect(h.runtime.memoryState.paused).toBe(false);
    for (const [lane, id] of waiting) await h.waitForEvent('job:completed', (e) => e.lane === lane && e.jobId === id);

    heapUsed = 40 * MiB;
    expect(await h.waitForEvent('memory:heap-warning', () => true)).toMatchObject({ heapWarning: true, heapUsedBytes: 40 * MiB });
    expect(logs).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'heap used above the warning threshold', heapWarnMb: 32 }));
    expect(logs).toContainEqual(expect.objectContaining({ msg: 'memory over the limit: intake paused on all lanes; active jobs continue' }));
  });

  it('hands back a job a paused worker was already waiting for, without counting it as an attempt', async () => {
    let rss = 10 * MiB;
    harness = await startWorkerHarness({
      lanesFile: { lanes: { a: { concurrency: 1 } } },
      env: { WORKER_MAX_RSS_MB: '64' },
      memory: { intervalMs: 20, sample: () => ({ rss, heapUsed: 0 }) },
    });
    const h = harness;
    // Idle: BullMQ's fetch is blocked in Redis waiting for a job when intake pauses.
    rss = 100 * MiB;
    await h.waitForEvent('memory:paused', () => true);
    const id = await h.add('a', 'noop', {});
    // BullMQ leases it anyway (its fetch was already under way); the runtime puts it back.
    await waitUntil(
      async () => {
        const job = await h.queue('a').getJob(id);
        return job!.attemptsStarted === 1 && (await job!.getState()) === 'waiting';
      },
      { what: 'the job to be leased and handed back' },
    );
    expect(await h.redis.hget(jobKeys(h.config.prefix, 'a', id).job, JOB_FIELD.uncountedStarts)).toBe('1');
    expect(h.events['job:started'].some((e) => e.jobId === id)).toBe(false);

    rss = 10 * MiB;
    await h.waitForEvent('job:completed', (e) => e.jobId === id);
    const job = (await h.queue('a').getJob(id))!;
    expect(job.attemptsMade).toBe(1);
    expect(job.attemptsStarted).toBe(2);
    expect(h.events['job:reclaimed']).toHaveLength(0);
  });
});

describe('shutting down while the memory guard holds intake', () => {
  it('waits for active jobs only up to the grace period and takes nothing new', async () => {
    let rss = 10 * MiB;
    // Runs until the test lets it go (after its checks), so that only the grace period can end
    // the drain, and nothing of it outlives the test.
    const release = deferred<void>();
    const held = defineHandler({ name: 'held', run: () => release.promise });
    const harness = await startWorkerHarness({
      lanesFile: { lanes: { a: { concurrency: 2 } } },
      handlers: [held],
      env: { WORKER_MAX_RSS_MB: '64' },
      memory: { intervalMs: 20, sample: () => ({ rss, heapUsed: 0 }) },
    });
    try {
      const quick = await harness.add('a', 'sleep', { ms: 200 });
      const slow = await harness.add('a', 'held', {});
      await harness.waitForEvent('job:started', (e) => e.jobId === slow);
      rss = 100 * MiB;
      await harness.waitForEvent('memory:paused', () => true);
      const waiting = await harness.add('a', 'noop', {});

      const closing = Date.now();
      await harness.runtime.close(800);
      // BullMQ was already paused, so its pause() would return at once: the drain must still wait
      // for active jobs, and only for the grace period.
      expect(Date.now() - closing).toBeGreaterThanOrEqual(750);
      expect(Date.now() - closing).toBeLessThan(30_000); // the held job never finishes on its own
      expect(await harness.queue('a').getJobState(quick)).toBe('completed');
      // Handed back to the wait list, although its handler ignores its aborted signal and runs on.
      expect(await harness.queue('a').getJobState(slow)).toBe('waiting');
      expect(await harness.queue('a').getJobState(waiting)).toBe('waiting');

      // When the held job ends, BullMQ's pause() reconnects the closed worker's blocking
      // connection; settled() resolves once that is closed again, and nothing of the lane is left.
      release.resolve();
      await harness.runtime.settled();
      expect(await laneConnectionNames(harness)).toEqual([]);
    } finally {
      release.resolve();
      await harness.close();
    }
  });
});

function captureLogs(harness: WorkerHarness): Array<Record<string, unknown>> {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  harness.logger.clear().add(new winston.transports.Stream({ stream }));
  harness.logger.level = 'info';
  return lines;
}

/** The Redis connections still open for the harness's lanes (BullMQ names them after the queue). */
async function laneConnectionNames(harness: WorkerHarness): Promise<string[]> {
  const list = String(await harness.redis.client('LIST'));
  return [...list.matchAll(/ name=(\S+)/g)].map((m) => m[1]!).filter((name) => name.startsWith(`${harness.config.prefix}:`));
}
