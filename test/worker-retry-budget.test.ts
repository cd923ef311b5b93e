// The per-lane retry budget against a dependency that fails every call: total attempts stay within
// first attempts plus what the budget allows, instead of jobs × attempts, in one worker and across
// two worker processes sharing the budget through Redis.
import { existsSync } from 'node:fs';
import { createLaneQueue, createRedis, loadConfig, wrapJobData, type RetryBudgetPolicy } from '@bullpen/core';
import type { Job, Queue } from 'bullmq';
import { cleanupPrefix, standaloneUrl } from './support/config';
import { redisUrl, testPrefix, waitUntil } from './support/wait';
import { startWorkerHarness, type WorkerHarness } from './fixtures/worker-harness';
import { WORKER_MAIN, spawnWorker, writeLanesFile, type WorkerProcess } from './fixtures/worker-process';

/** Most retries the budget can grant while the whole run fits in one window. */
function retryBound(budget: RetryBudgetPolicy, firstAttempts: number): number {
  return Math.floor(budget.ratio * firstAttempts + budget.minRetriesPerSecond * budget.windowSeconds);
}

async function allFailed(queue: Queue, jobs: number): Promise<Job[]> {
  await waitUntil(async () => (await queue.getJobCounts('failed')).failed === jobs, {
    timeoutMs: 60_000,
    intervalMs: 100,
    what: `all ${jobs} jobs to fail`,
  });
  return queue.getFailed(0, jobs);
}

const budget: RetryBudgetPolicy = { ratio: 0.1, minRetriesPerSecond: 1, windowSeconds: 60, onExhausted: 'fail' };
const lane = (concurrency: number) => ({
  concurrency,
  attempts: 5,
  backoff: { strategy: 'fixed', baseMs: 10, capMs: 1000 },
  retryBudget: budget,
});

describe('the retry budget', () => {
  let harness: WorkerHarness | undefined;
  const workers: WorkerProcess[] = [];
  const cleanups: Array<() => void | Promise<void>> = [];
  afterEach(async () => {
    await harness?.close();
    harness = undefined;
    await Promise.all(workers.splice(0).map((w) => w.stop('SIGKILL')));
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  it('keeps 1,000 jobs against a dependency failing every call within first attempts plus the budget, not jobs × attempts', async () => {
    const jobs = 1000;
    harness = await startWorkerHarness({ lanesFile: { maxHandlersPerProcess: 64, lanes: { flaky: lane(50) } } });
    const queue = harness.queue('flaky');
    await queue.addBulk(
      Array.from({ length: jobs }, () => ({ name: 'fail', data: wrapJobData({ kind: 'retryable' }, { v: 1, tenant: 'acme' }) })),
    );
    const failed = await allFailed(queue, jobs);

    const attempts = failed.reduce((sum, job) => sum + job.attemptsMade, 0);
    const bound = jobs + retryBound(budget, jobs);
    process.stdout.write(`retry budget, one worker: jobs=${jobs} attempts=${attempts} bound=${bound} (without a budget: ${jobs * 5})\n`);
    expect(attempts).toBeLessThanOrEqual(bound);
    expect(attempts).toBeGreaterThan(jobs); // the budget did grant retries
    // Every job refused a retry ended as a dead letter saying why.
    const refused = failed.filter((job) => job.failedReason === 'retry_budget_exhausted');
    expect(refused.length).toBe(harness.events['job:retry-budget-exhausted'].length);
    expect(refused.length).toBeGreaterThan(jobs - (attempts - jobs));
    expect(harness.events['job:retry-budget-exhausted'].every((e) => e.action === 'fail')).toBe(true);
  });

  it('is shared by two worker processes: their retries together stay within one budget', async () => {
    if (!existsSync(WORKER_MAIN)) throw new Error(`${WORKER_MAIN} is missing: run npx tsc -b apps/worker first`);
    const jobs = 400;
    const prefix = testPrefix('budget2');
    const lanesFile = writeLanesFile({ lanes: { flaky: lane(20) } });
    const env = { REDIS_URL: redisUrl(), BULLPEN_PREFIX: prefix, LANES_FILE: lanesFile.file };
    const config = loadConfig(env);
    const redis = createRedis(standaloneUrl(config), 'worker', 'bullpen:test');
    const queue = createLaneQueue(config, 'flaky', redis);
    cleanups.push(lanesFile.cleanup, async () => {
      await queue.close();
      await redis.quit();
      await cleanupPrefix(prefix);
    });
    const a = spawnWorker({ ...env, WORKER_ID: 'budget-a' });
    const b = spawnWorker({ ...env, WORKER_ID: 'budget-b' });
    workers.push(a, b);
    await Promise.all([a.started(), b.started()]);

    await queue.addBulk(
      Array.from({ length: jobs }, () => ({ name: 'fail', data: wrapJobData({ kind: 'retryable' }, { v: 1, tenant: 'acme' }) })),
    );
    const failed = await allFailed(queue, jobs);

    const attempts = failed.reduce((sum, job) => sum + job.attemptsMade, 0);
    const retries = attempts - jobs;
    const bound = jobs + retryBound(budget, jobs);
    // Two budgets of their own would each grant the floor (60) plus 10% of their first attempts.
    const separateBudgets = 2 * budget.minRetriesPerSecond * budget.windowSeconds + Math.floor(budget.ratio * jobs);
    const retriesBy = new Map<string, number>();
    for (const job of failed) {
      for (const line of (await queue.getJobLogs(job.id!)).logs) {
        const row = JSON.parse(line) as { worker: string; delayMs: number | null };
        if (row.delayMs !== null) retriesBy.set(row.worker, (retriesBy.get(row.worker) ?? 0) + 1);
      }
    }
    process.stdout.write(
      `retry budget, two workers: jobs=${jobs} attempts=${attempts} bound=${bound} retries=${retries} ` +
        `(a=${retriesBy.get('budget-a') ?? 0}, b=${retriesBy.get('budget-b') ?? 0}; separate budgets would allow ${separateBudgets})\n`,
    );
    expect(attempts).toBeLessThanOrEqual(bound);
    expect(retries).toBeLessThan(separateBudgets);
    // Both processes retried, and drew on the same budget.
    expect(retriesBy.get('budget-a') ?? 0).toBeGreaterThan(0);
    expect(retriesBy.get('budget-b') ?? 0).toBeGreaterThan(0);
  });
});
