// The process-wide handler cap (maxHandlersPerProcess) below the sum of the lanes' concurrencies:
// a worker process leases no more jobs than it has slots for, so another worker process takes the
// rest, and the lanes share the slots, so a small lane is not stuck behind a big lane's backlog.
import { existsSync } from 'node:fs';
import { createLaneQueue, createRedis, loadConfig, wrapJobData } from '@bullpen/core';
import { z } from 'zod';
import { defineHandler } from '../apps/worker/src/handler';
import { startWorkerHarness, type WorkerHarness } from './fixtures/worker-harness';
import { cleanupPrefix, standaloneUrl } from './support/config';
import { WORKER_MAIN, spawnWorker, writeLanesFile } from './fixtures/worker-process';
import { deferred, redisUrl, testPrefix, waitUntil, type Deferred } from './support/wait';

/** A handler that runs until the test opens its gate (or its signal aborts). */
class Gates {
  readonly running = new Set<string>();
  readonly started: string[] = [];
  private readonly gates = new Map<string, Deferred<void>>();

  handler(name: string) {
    return defineHandler({
      name,
      payload: z.object({ key: z.string() }),
      run: async ({ key }, { signal }) => {
        this.running.add(key);
        this.started.push(key);
        try {
          await new Promise<void>((resolve, reject) => {
            this.gate(key).promise.then(resolve, reject);
            signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
          });
        } finally {
          this.running.delete(key);
        }
      },
    });
  }

  open(key: string): void {
    this.gate(key).resolve();
  }

  openAll(): void {
    for (const gate of this.gates.values()) gate.resolve();
  }

  private gate(key: string): Deferred<void> {
    let gate = this.gates.get(key);
    if (!gate) {
      gate = deferred<void>();
      this.gates.set(key, gate);
    }
    return gate;
  }
}

const LANES = { maxHandlersPerProcess: 4, lanes: { big: { concurrency: 20 }, small: { concurrency: 2 } } };

describe('worker slot sharing', () => {
  const harnesses: WorkerHarness[] = [];
  let gates: Gates;
  beforeEach(() => {
    gates = new Gates();
  });
  afterEach(async () => {
    gates.openAll();
    // The first harness owns the prefix and removes it: close it last.
    for (const harness of harnesses.splice(0).reverse()) await harness.close();
  });

  const start = async (env: Record<string, string> = {}) => {
    const harness = await startWorkerHarness({ lanesFile: LANES, env, handlers: [gates.handler('gate')] });
    harnesses.push(harness);
    return harness;
  };

  it('leases no more jobs than it has handler slots, so a second worker process runs the rest', async () => {
    const first = await start({ WORKER_ID: 'first' });
    const keys = Array.from({ length: 12 }, (_, i) => `big-${i}`);
    for (const key of keys) await first.add('big', 'gate', { key });
    await waitUntil(() => first.runtime.stats().activeHandlers >= 3, { what: 'the first worker to run big jobs' });
    // Its jobs active in BullMQ are the ones it runs: none sits leased waiting for a slot.
    await waitUntil(async () => (await first.queue('big').getWaitingCount()) === 12 - first.runtime.stats().activeHandlers, {
      what: 'the first worker to lease only what it runs',
    });
    expect(await first.queue('big').getActiveCount()).toBe(first.runtime.stats().activeHandlers);
    expect(first.runtime.stats().waitingForSlot).toBe(0);

    const second = await start({ WORKER_ID: 'second', BULLPEN_PREFIX: first.config.prefix });
    await waitUntil(() => second.runtime.stats().activeHandlers >= 3, { what: 'the second worker to run big jobs while the first is full' });
    const running = first.runtime.stats().activeHandlers + second.runtime.stats().activeHandlers;
    expect(await first.queue('big').getActiveCount()).toBe(running);
    expect(gates.running.size).toBe(running);
  });

  it('takes a lane\'s next jobs while its one running job holds on after the queue ran empty', async () => {
    const harness = await start();
    await harness.add('big', 'gate', { key: 'first' });
    await waitUntil(() => gates.running.has('first'), { what: 'the first job to run' });
    // The lane found its queue empty since: it waits for the next job in a slot of its own.
    await waitUntil(() => harness.runtime.stats().lanes.big!.leaseLimit === 2, { what: 'the lane to keep one slot for its next job' });
    await harness.add('big', 'gate', { key: 'second' });
    await harness.add('big', 'gate', { key: 'third' });
    await waitUntil(() => gates.running.has('second') && gates.running.has('third'), { what: 'the next jobs to run beside the first' });
  });

  it('runs a small lane\'s job at once although a big lane\'s backlog fills the process', async () => {
    const harness = await start();
    for (let i = 0; i < 20; i++) await harness.add('big', 'gate', { key: `big-${i}` });
    await waitUntil(() => harness.runtime.stats().lanes.big!.activeHandlers >= 3, { what: 'the big lane to run its jobs' });
    await harness.add('small', 'gate', { key: 'small-0' });
    await harness.add('small', 'gate', { key: 'small-1' });

    // While every big job holds on, a slot is there for the small lane.
    await waitUntil(() => gates.running.has('small-0'), { what: 'the first small job to run while the big ones hold on' });
    // The next slot a big job gives back goes to the small lane, not to the big lane's backlog.
    const bigRunning = [...gates.running].filter((key) => key.startsWith('big-'));
    gates.open(bigRunning[0]!);
    await waitUntil(() => gates.running.has('small-1'), { what: 'the second small job to get the next free slot' });
    expect(gates.started.filter((key) => key.startsWith('big-'))).toEqual(bigRunning);
    expect(harness.runtime.stats().lanes).toMatchObject({ big: { activeHandlers: 2 }, small: { activeHandlers: 2 } });
    expect(await harness.queue('big').getActiveCount()).toBe(2);
    expect(harness.runtime.stats().waitingForSlot).toBe(0);
  });

  it('hands back a job that a fetch made under a lane\'s higher lease limit delivers after the limit dropped, instead of holding it for a slot', async () => {
    const harness = await startWorkerHarness({
      lanesFile: { maxHandlersPerProcess: 3, lanes: { a: { concurrency: 4 }, b: { concurrency: 4 } } },
      handlers: [gates.handler('gate')],
    });
    harnesses.push(harness);
    const lanes = () => harness.runtime.stats().lanes;
    // b runs one job and, its queue empty, keeps a second slot with a blocking fetch open for its next.
    await harness.add('b', 'gate', { key: 'b-1' });
    await waitUntil(() => gates.running.has('b-1') && lanes().b!.leaseLimit === 2, { what: 'lane b to wait for its next job in a second slot' });
    // a gets busy: the slots are shared again, b's limit drops to 1, and a runs two jobs.
    for (let i = 1; i <= 3; i++) await harness.add('a', 'gate', { key: `a-${i}` });
    await waitUntil(() => gates.running.has('a-1') && gates.running.has('a-2'), { what: 'lane a to run two jobs' });
    expect(lanes()).toMatchObject({ a: { leaseLimit: 2 }, b: { leaseLimit: 1 } });
    // b's fetch, opened under its old limit, still takes the next job of its queue.
    const id = await harness.add('b', 'gate', { key: 'b-2' });
    await waitUntil(async () => harness.events['job:started'].some((e) => e.jobId === id), { what: 'b\'s open fetch to lease the job' });
    // The process leased beyond its slots: the job goes back to wait, where another worker process
    // (or this one, once a slot is free) takes it, rather than sitting here for a slot.
    await waitUntil(async () => (await harness.queue('b').getWaitingCount()) === 1, { what: 'the job back in the wait list' });
    expect(harness.runtime.stats().waitingForSlot).toBe(0);
    expect(gates.running.has('b-2')).toBe(false);
    gates.openAll();
    await harness.waitForEvent('job:completed', (e) => e.jobId === id, 10_000);
  });

  it('starts each retry within a second of its backoff while the lanes share the slots, never after BullMQ\'s 5 s idle wait', async () => {
    if (!existsSync(WORKER_MAIN)) throw new Error(`${WORKER_MAIN} is missing: run npx tsc -b apps/worker first`);
    const backoffMs = 300;
    const attempts = 60;
    const prefix = testPrefix('retrygaps');
    const lanesFile = writeLanesFile({
      maxHandlersPerProcess: 4,
      lanes: {
        a: { concurrency: 4, attempts, backoff: { strategy: 'fixed', baseMs: backoffMs, capMs: backoffMs } },
        b: { concurrency: 4 },
      },
    });
    const env = { REDIS_URL: redisUrl(), BULLPEN_PREFIX: prefix, LANES_FILE: lanesFile.file };
    const config = loadConfig(env);
    const redis = createRedis(standaloneUrl(config), 'worker', 'bullpen:test');
    const queue = createLaneQueue(config, 'a', redis);
    const worker = spawnWorker({ ...env, WORKER_ID: 'retry-gaps' });
    try {
      await worker.started();
      // One job retrying alone, as a lane whose queue is otherwise empty does: the lane waits for
      // work with a blocking fetch beside its running job, and that fetch may take the retry's marker.
      const job = await queue.add('fail', wrapJobData({ kind: 'retryable' }, { v: 1, tenant: 'acme' }));
      await waitUntil(async () => (await queue.getJobCounts('failed')).failed === 1, {
        timeoutMs: 120_000,
        intervalMs: 50,
        what: `the job to use its ${attempts} attempts`,
      });
      const rows = (await queue.getJobLogs(job.id!)).logs.map((line) => JSON.parse(line) as { ts: number });
      expect(rows).toHaveLength(attempts);
      // From one failed attempt's row to the next: the backoff, the start and the handler's run.
      const gaps = rows.slice(1).map((row, k) => row.ts - rows[k]!.ts);
      process.stdout.write(`retry gaps with shared slots (backoff ${backoffMs} ms): max ${Math.max(...gaps)} ms over ${gaps.length}\n`);
      expect(Math.max(...gaps)).toBeLessThan(backoffMs + 1700);
    } finally {
      await worker.stop('SIGKILL');
      await queue.close();
      await redis.quit();
      await cleanupPrefix(prefix);
      lanesFile.cleanup();
    }
  });

  it('starts a retry within a second of its backoff when another fetch took its delay marker, not after BullMQ\'s 5 s idle wait', async () => {
    const backoffMs = 300;
    const gate = deferred<void>();
    let runs = 0;
    const flaky = defineHandler({
      name: 'flaky',
      run: async () => {
        runs += 1;
        if (runs === 1) {
          await gate.promise;
          throw new Error('dependency down');
        }
      },
    });
    const harness = await startWorkerHarness({
      lanesFile: { lanes: { a: { concurrency: 1, attempts: 2, backoff: { strategy: 'fixed', baseMs: backoffMs, capMs: backoffMs } } } },
      handlers: [flaky],
    });
    harnesses.push(harness);
    const id = await harness.add('a', 'flaky', {});
    await waitUntil(() => runs === 1, { what: 'the first attempt to run' });
    // The lane's one job runs, so its worker has no fetch open: the marker of the retry goes to
    // this connection instead, as it may go to a lane's other fetch, whose wake-up time BullMQ
    // then clears.
    const marker = harness.queue('a').keys.marker!;
    const thief = harness.redis.duplicate();
    try {
      const thiefId = String(await thief.client('ID'));
      // Markers left from the job's enqueue would be taken first.
      await harness.redis.del(marker);
      const stolen = thief.bzpopmin(marker, 10);
      await waitUntil(async () => String(await harness.redis.client('LIST')).split('\n').some((c) => c.includes(`id=${thiefId} `) && c.includes('cmd=bzpopmin') && / flags=\S*b/.test(c)), {
        what: 'the other fetch to block on the lane\'s marker',
      });
      gate.resolve();
      const taken = await stolen;
      expect(Number(taken?.[2])).toBeGreaterThan(0); // the delay marker of the retry
      const completed = await harness.waitForEvent('job:completed', (e) => e.jobId === id, 15_000);
      const failed = harness.events['job:failed'].find((e) => e.jobId === id)!;
      const lateMs = completed.at - failed.at - backoffMs;
      process.stdout.write(`retry whose marker was taken: started ${lateMs} ms after its backoff\n`);
      expect(lateMs).toBeLessThan(2500);
    } finally {
      thief.disconnect();
    }
  });
});
