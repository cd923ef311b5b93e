// The retry budget on a lane that defers refused retries (the default): a deferred retry reaches
// the failing dependency only when the budget grants it as it comes due, so the retries the
// dependency sees in any window stay within the budget's allowance; once the dependency recovers,
// every deferred job completes, none lost, and its history says which starts ran no handler.
import { PermanentError, type RetryBudgetPolicy } from '@bullpen/core';
import { defineHandler } from '../apps/worker/src/handler';
import { startWorkerHarness, type WorkerHarness } from './fixtures/worker-harness';
import { waitUntil } from './support/wait';

/** A dependency that fails every call until it recovers, and remembers when each job called it. */
class Dependency {
  healthy = false;
  readonly calls: Array<{ jobId: string; at: number }> = [];

  call(jobId: string): void {
    this.calls.push({ jobId, at: Date.now() });
    if (!this.healthy) throw Object.assign(new Error('dependency answered 503'), { status: 503 });
  }
}

/** The worst window of the budget's length: retries the dependency saw in it, and what the budget
 * allows for the first attempts it saw in it. Seconds are the budget's own one-second buckets. */
function worstWindow(calls: ReadonlyArray<{ jobId: string; at: number }>, budget: RetryBudgetPolicy) {
  const seen = new Set<string>();
  const firsts = new Map<number, number>();
  const retries = new Map<number, number>();
  for (const { jobId, at } of calls) {
    const second = Math.floor(at / 1000);
    const counts = seen.has(jobId) ? retries : firsts;
    seen.add(jobId);
    counts.set(second, (counts.get(second) ?? 0) + 1);
  }
  const seconds = calls.map(({ at }) => Math.floor(at / 1000));
  let worst = { retries: 0, allowed: 0, excess: -Infinity };
  for (let end = Math.min(...seconds); end <= Math.max(...seconds); end += 1) {
    let r = 0;
    let f = 0;
    for (let s = end - budget.windowSeconds + 1; s <= end; s += 1) {
      r += retries.get(s) ?? 0;
      f += firsts.get(s) ?? 0;
    }
    const allowed = Math.floor(budget.ratio * f + budget.minRetriesPerSecond * budget.windowSeconds);
    if (r - allowed > worst.excess) worst = { retries: r, allowed, excess: r - allowed };
  }
  return worst;
}

describe('the retry budget on a defer lane', () => {
  let harness: WorkerHarness | undefined;
  afterEach(async () => {
    await harness?.close();
    harness = undefined;
  });

  it('lets deferred retries reach a failing dependency only as the budget grants them, and completes every job once it recovers', async () => {
    const jobs = 40;
    const budget: RetryBudgetPolicy = { ratio: 0.1, minRetriesPerSecond: 4, windowSeconds: 2, onExhausted: 'defer' };
    const dependency = new Dependency();
    const handler = defineHandler({
      name: 'call_dependency',
      run: (_data, ctx) => {
        if (!ctx.jobId) throw new PermanentError('no job id', 'validation');
        dependency.call(ctx.jobId);
      },
    });
    harness = await startWorkerHarness({
      lanesFile: {
        maxHandlersPerProcess: 16,
        lanes: {
          flaky: {
            concurrency: 8,
            attempts: 100,
            backoff: { strategy: 'fixed', baseMs: 10, capMs: 1000 },
            retryBudget: budget,
          },
        },
      },
      handlers: [handler],
    });
    const h = harness;
    const ids = await Promise.all(Array.from({ length: jobs }, (_, n) => h.add('flaky', 'call_dependency', { n })));

    // An outage of several windows, in which every job's retry is refused again and again.
    const refusals = h.events['job:retry-budget-exhausted'];
    await waitUntil(
      () => refusals.length >= 4 * jobs && dependency.calls.length > 0 && Date.now() - dependency.calls[0]!.at >= 4 * budget.windowSeconds * 1000,
      { timeoutMs: 60_000, intervalMs: 50, what: 'the budget to refuse every job\'s retry a few times over several windows' },
    );
    dependency.healthy = true;
    const queue = h.queue('flaky');
    await waitUntil(async () => (await queue.getJobCounts('completed')).completed === jobs, {
      timeoutMs: 60_000,
      intervalMs: 100,
      what: `all ${jobs} jobs to complete once the dependency recovered`,
    });

    const worst = worstWindow(dependency.calls, budget);
    const retries = dependency.calls.length - jobs;
    process.stdout.write(
      `defer lane: jobs=${jobs} calls=${dependency.calls.length} retries=${retries} refusals=${refusals.length} ` +
        `worst ${budget.windowSeconds}s window: ${worst.retries} retries, ${worst.allowed} allowed\n`,
    );
    // Measured on the dependency's calls, not on the budget's grants: a retry granted when its
    // attempt failed waits for its backoff and then for the worker, so a window can also see retries
    // granted in the one before it that started late. A worker stalled for a second or two (here
    // the test process itself, on a busy machine) runs them together with the window's own. A lane
    // whose deferred retries did not ask the budget again would let all 40 jobs through each time
    // they came due.
    expect(worst.retries).toBeLessThanOrEqual(2 * worst.allowed + 4);
    expect(refusals.every((e) => e.action === 'defer')).toBe(true);

    const counts = await queue.getJobCounts('completed', 'failed', 'delayed', 'wait', 'active');
    expect(counts).toEqual({ completed: jobs, failed: 0, delayed: 0, wait: 0, active: 0 });
    // A start the budget deferred again used no attempt, and its row says the handler did not run.
    const runs = new Map<string, number>();
    for (const { jobId } of dependency.calls) runs.set(jobId, (runs.get(jobId) ?? 0) + 1);
    let deferralRows = 0;
    for (const id of ids) {
      const job = await queue.getJob(id);
      expect(job?.attemptsMade).toBe(runs.get(id));
      const rows = await h.attemptRows('flaky', id);
      const deferrals = rows.filter((row) => row.budgetDeferral !== undefined);
      expect(rows.length - deferrals.length).toBe(runs.get(id)! - 1);
      for (const row of deferrals) {
        expect(row).toMatchObject({ errorClass: 'http_5xx', message: expect.stringContaining('the handler did not run') });
        expect(row.budgetDeferral).toBeGreaterThanOrEqual(2);
      }
      deferralRows += deferrals.length;
    }
    expect(deferralRows).toBeGreaterThan(0);
  });
});
