// The retry engine run by a real worker against real Redis: each backoff strategy's delays, Retry-
// After, rate-limited retries that use no attempt, deadlines, dead letters with their history, the
// retry budget's defer and fail actions, and the bp: events that go with them.
import { JOB_FIELD, LANE_EVENT, RateLimitedError, type BackoffStrategyName, type DecodedLaneEvent } from '@bullpen/core';
import { jobStatusView } from '../apps/api/src/views';
import { defineHandler } from '../apps/worker/src/handler';
import { seededRandom } from '../apps/worker/src/random';
import { decideRetry } from '../apps/worker/src/retry-decision';
import { waitUntil } from './support/wait';
import { startWorkerHarness, type WorkerHarness } from './fixtures/worker-harness';

const bp = <E extends DecodedLaneEvent['event']>(events: DecodedLaneEvent[], event: E, jobId?: string) =>
  events.filter((e): e is Extract<DecodedLaneEvent, { event: E }> => e.event === event && (!jobId || (e as { jobId?: string }).jobId === jobId));

describe('worker retries', () => {
  let harness: WorkerHarness | undefined;
  afterEach(async () => {
    await harness?.close();
    harness = undefined;
  });

  it.each<[BackoffStrategyName, number]>([
    ['exponential', 0],
    ['decorrelated', 0],
    ['fixed', 0.2],
    ['linear', 0],
  ])('waits the %s backoff between real attempts, as its formula gives under a seeded random source, never past the cap', async (strategy, jitter) => {
    const seed = 11;
    const backoff = { strategy, baseMs: 150, capMs: 400, jitter };
    harness = await startWorkerHarness({
      lanesFile: { lanes: { work: { concurrency: 1, attempts: 4, backoff } } },
      random: seededRandom(seed),
    });
    const id = await harness.add('work', 'fail', { kind: 'retryable' });
    await harness.waitForEvent('job:dead', (e) => e.jobId === id);

    // The same source replayed through the same rules gives the delays the worker must have chosen.
    const replay = seededRandom(seed);
    const expected: number[] = [];
    for (let retry = 0; retry < 3; retry += 1) {
      const previous = expected[retry - 1];
      const decision = decideRetry({
        classification: { errorClass: 'handler', retryable: true },
        attemptsMade: retry,
        maxAttempts: 4,
        backoff,
        ...(previous !== undefined ? { previousDelayMs: previous } : {}),
        random: replay,
      });
      expected.push(decision.delayMs!);
    }
    const rows = await harness.attemptRows('work', id);
    expect(rows.map((r) => r.delayMs)).toEqual([...expected, null]);
    for (const delay of expected) expect(delay).toBeLessThanOrEqual(400);
    if (strategy === 'linear') expect(expected).toEqual([150, 300, 400]);

    const starts = harness.events['job:started'].filter((e) => e.jobId === id).map((e) => e.at);
    expect(starts).toHaveLength(4);
    expected.forEach((delay, i) => {
      const gap = starts[i + 1]! - starts[i]!;
      expect(gap).toBeGreaterThanOrEqual(delay - 5);
      expect(gap).toBeLessThan(delay + 1500); // room for a loaded machine, well short of any other schedule
    });
    const applied = harness.events['job:backoff-applied'].filter((e) => e.jobId === id);
    expect(applied.map((e) => [e.delayMs, e.strategy, e.source])).toEqual(expected.map((d) => [d, strategy, 'strategy']));
  });

  it('fails a permanent error after exactly one attempt and keeps the job in the failed set with its history', async () => {
    harness = await startWorkerHarness({ lanesFile: { lanes: { work: { concurrency: 1, attempts: 5 } } } });
    const id = await harness.add('work', 'fail', { kind: 'permanent', message: 'bad input' });
    const dead = await harness.waitForEvent('job:dead', (e) => e.jobId === id);
    const queue = harness.queue('work');

    expect(dead).toMatchObject({ reason: 'permanent_error', errorClass: 'handler', message: 'bad input', attemptsMade: 1 });
    expect((await queue.getFailed()).map((j) => j.id)).toContain(id);
    expect(harness.events['job:started'].filter((e) => e.jobId === id)).toHaveLength(1);
    expect(await harness.attemptRows('work', id)).toEqual([
      { type: 'attempt', attempt: 1, errorClass: 'handler', message: 'bad input', delayMs: null, worker: harness.config.workerId, ts: expect.any(Number) },
    ]);
    await waitUntil(async () => bp(await harness!.streamEvents('work'), LANE_EVENT.dead, id).length === 1, { what: 'bp:dead' });
    const [attempt] = bp(await harness.streamEvents('work'), LANE_EVENT.attempt, id);
    expect(attempt).toMatchObject({ outcome: 'failed', errorClass: 'handler', willRetry: false, worker: harness.config.workerId });
    expect(bp(await harness.streamEvents('work'), LANE_EVENT.dead, id)).toEqual([
      {
        event: LANE_EVENT.dead,
        jobId: id,
        name: 'fail',
        errorClass: 'handler',
        reason: 'permanent_error',
        attemptsMade: 1,
        tenant: 'acme',
        attempt: 1,
        worker: harness.config.workerId,
      },
    ]);
  });

  it("applies the lane's retention as its worker finishes jobs: the newest completed and dead jobs are kept, up to each count", async () => {
    const retention = { completed: { ageSeconds: 3600, count: 2 }, failed: { ageSeconds: 3600, count: 1 } };
    harness = await startWorkerHarness({ lanesFile: { lanes: { work: { concurrency: 1, attempts: 1, retention } } } });
    const completed: string[] = [];
    for (let i = 0; i < 4; i += 1) completed.push(await harness.add('work', 'noop', {}));
    const dead: string[] = [];
    for (let i = 0; i < 3; i += 1) dead.push(await harness.add('work', 'fail', { kind: 'permanent', message: `bad ${i}` }));
    await harness.waitForEvent('job:dead', (e) => e.jobId === dead[2]);
    const queue = harness.queue('work');
    // The jobs carry no retention of their own (laneJobOptions): the worker's is what applies.
    expect((await queue.getJob(completed[3]!))!.opts).not.toHaveProperty('removeOnComplete');
    expect((await queue.getCompleted()).map((j) => j.id).sort()).toEqual(completed.slice(2).sort());
    expect((await queue.getFailed()).map((j) => j.id)).toEqual([dead[2]]);
    // Trimmed jobs are gone from Redis, not only from the sets.
    expect(await queue.getJob(completed[0]!)).toBeUndefined();
    expect(await queue.getJob(dead[0]!)).toBeUndefined();
  });

  it('honours Retry-After: the next attempt waits at least that long, clamped to the cap', async () => {
    harness = await startWorkerHarness({
      lanesFile: { lanes: { work: { concurrency: 1, attempts: 2, backoff: { strategy: 'fixed', baseMs: 10, capMs: 5000 } } } },
    });
    const id = await harness.add('work', 'fail', { kind: 'rate_limited', retryAfterMs: 600 });
    await harness.waitForEvent('job:dead', (e) => e.jobId === id);
    const [first, second] = harness.events['job:started'].filter((e) => e.jobId === id).map((e) => e.at);

    expect(second! - first!).toBeGreaterThanOrEqual(595);
    expect((await harness.attemptRows('work', id)).map((r) => [r.errorClass, r.delayMs])).toEqual([
      ['rate_limited', 600],
      ['rate_limited', null],
    ]);
    expect(harness.events['job:backoff-applied'].find((e) => e.jobId === id)).toMatchObject({ source: 'retry_after', retryAfterMs: 600, delayMs: 600 });
  });

  it('does not use up attempts on rate-limited retries when the lane says so, and records each of them', async () => {
    let starts = 0;
    const limitedThrice = defineHandler({
      name: 'limited_thrice',
      run: () => {
        starts += 1;
        if (starts <= 3) throw new RateLimitedError('429 from the dependency', 50);
        return { starts };
      },
    });
    const lane = (rateLimitedConsumesAttempt: boolean) => ({
      concurrency: 1,
      attempts: 2,
      rateLimitedConsumesAttempt,
      backoff: { strategy: 'fixed', baseMs: 10, capMs: 1000 },
    });
    harness = await startWorkerHarness({
      lanesFile: { lanes: { free: lane(false), counted: lane(true) } },
      handlers: [limitedThrice],
    });

    const freeId = await harness.add('free', 'limited_thrice', {});
    await harness.waitForEvent('job:completed', (e) => e.jobId === freeId);
    const job = await harness.queue('free').getJob(freeId);
    expect(job!.returnvalue).toEqual({ starts: 4 });
    expect(job!.attemptsMade).toBe(1); // three rate-limited retries, yet only the successful attempt counted
    expect(job!.attemptsStarted).toBe(4);
    expect((await harness.attemptRows('free', freeId)).map((r) => [r.attempt, r.errorClass, r.delayMs])).toEqual([
      [1, 'rate_limited', 50],
      [1, 'rate_limited', 50],
      [1, 'rate_limited', 50],
    ]);
    expect(harness.events['job:retrying'].filter((e) => e.jobId === freeId).map((e) => [e.consumesAttempt, e.nextAttempt, e.reason])).toEqual([
      [false, 1, 'rate_limited'],
      [false, 1, 'rate_limited'],
      [false, 1, 'rate_limited'],
    ]);
    // Starts that used no attempt are not mistaken for a crashed worker's.
    expect(harness.events['job:reclaimed']).toHaveLength(0);
    await waitUntil(async () => bp(await harness!.streamEvents('free'), LANE_EVENT.attempt, freeId).length === 4, {
      what: 'four bp:attempt events',
    });
    const attempts = bp(await harness.streamEvents('free'), LANE_EVENT.attempt, freeId);
    expect(attempts.map((e) => [e.outcome, e.willRetry])).toEqual([
      ['failed', true],
      ['failed', true],
      ['failed', true],
      ['completed', false],
    ]);

    // The same handler on a lane where rate limits count: two attempts, then the dead letters.
    starts = 0;
    const countedId = await harness.add('counted', 'limited_thrice', {});
    const dead = await harness.waitForEvent('job:dead', (e) => e.jobId === countedId);
    expect(dead).toMatchObject({ reason: 'attempts_exhausted', errorClass: 'rate_limited', attemptsMade: 2 });
  });

  it('ends a job its dependency rate limits forever as a dead letter once the lane\'s free rate-limited retries are used', async () => {
    const alwaysLimited = defineHandler({
      name: 'always_limited',
      run: () => {
        throw new RateLimitedError('429 from the dependency', 10);
      },
    });
    // No deadline, and the default bound on free retries (20).
    harness = await startWorkerHarness({
      lanesFile: { lanes: { free: { concurrency: 1, attempts: 2, rateLimitedConsumesAttempt: false, backoff: { strategy: 'fixed', baseMs: 10, capMs: 100 } } } },
      handlers: [alwaysLimited],
    });
    const id = await harness.add('free', 'always_limited', {});
    const dead = await harness.waitForEvent('job:dead', (e) => e.jobId === id, 30_000);
    const job = await harness.queue('free').getJob(id);

    expect(await job!.getState()).toBe('failed');
    expect(job!.failedReason).toBe('rate_limited_retries_exhausted');
    expect(dead).toMatchObject({ reason: 'rate_limited_retries_exhausted', errorClass: 'rate_limited' });
    // Twenty retries used no attempt; the twenty-first rate limit ended the job in its first attempt.
    expect(job!.attemptsStarted).toBe(21);
    const retries = harness.events['job:retrying'].filter((e) => e.jobId === id);
    expect(retries).toHaveLength(20);
    expect(retries.every((e) => !e.consumesAttempt)).toBe(true);
    const failures = harness.events['job:failed'].filter((e) => e.jobId === id);
    expect(failures).toHaveLength(21);
    expect(failures.at(-1)).toMatchObject({ errorClass: 'rate_limited', willRetry: false });
    const rows = await harness.attemptRows('free', id);
    expect(rows).toHaveLength(21);
    expect(rows.at(-1)).toMatchObject({ attempt: 1, errorClass: 'rate_limited', message: '429 from the dependency' });
    expect(rows.at(-1)!.delayMs).toBeNull();
    // All 21 rows are attempt 1: each free retry's row says which free retry it was, and the API
    // shows it; the row that ended the job used the attempt and has none.
    expect(rows.map((r) => r.rateLimitedRetry)).toEqual([...Array.from({ length: 20 }, (_, i) => i + 1), undefined]);
    const { logs } = await harness.queue('free').getJobLogs(id);
    const shown = jobStatusView(job!, 'free', 'failed', logs).attempts;
    expect(shown.slice(0, 2)).toEqual([
      expect.objectContaining({ attempt: 1, errorClass: 'rate_limited', rateLimitedRetry: 1 }),
      expect.objectContaining({ attempt: 1, errorClass: 'rate_limited', rateLimitedRetry: 2 }),
    ]);
    expect(shown.at(-1)).not.toHaveProperty('rateLimitedRetry');
    await waitUntil(async () => bp(await harness!.streamEvents('free'), LANE_EVENT.dead, id).length === 1, { what: 'the bp:dead event' });
    expect(bp(await harness.streamEvents('free'), LANE_EVENT.dead, id)[0]).toMatchObject({ reason: 'rate_limited_retries_exhausted', errorClass: 'rate_limited' });
  });

  it('stops retrying with deadline_exceeded when the next attempt would start after the deadline', async () => {
    harness = await startWorkerHarness({
      lanesFile: {
        lanes: { work: { concurrency: 1, attempts: 10, deadlineMs: 3000, backoff: { strategy: 'fixed', baseMs: 1800, capMs: 3000 } } },
      },
    });
    const id = await harness.add('work', 'fail', { kind: 'retryable', message: 'flaky' });
    const dead = await harness.waitForEvent('job:dead', (e) => e.jobId === id);
    const job = await harness.queue('work').getJob(id);

    expect(job!.failedReason).toBe('deadline_exceeded');
    expect(dead).toMatchObject({ reason: 'deadline_exceeded', errorClass: 'deadline_exceeded' });
    // Attempt 1 fails at once and retries 1.8 s later; attempt 2's retry would start after the
    // 3 s deadline, so none is scheduled: the job fails then, not when the deadline passes. (The
    // margins are wide because a loaded machine can start attempt 2 late.)
    expect((await harness.attemptRows('work', id)).map((r) => [r.attempt, r.errorClass, r.message, r.delayMs])).toEqual([
      [1, 'handler', 'flaky', 1800],
      [2, 'deadline_exceeded', 'flaky', null],
    ]);
    expect(job!.finishedOn!).toBeLessThan(job!.timestamp + 3000);
    expect(harness.events['job:retrying'].filter((e) => e.jobId === id)).toHaveLength(1);
  });

  /** Lane `work`, whose budget grants no retry below 10,000 first attempts in its window: it refuses
   * every retry of these tests, which defers each to between 350 and 700 ms. */
  const refusingBudgetLane = (policy: { attempts: number; deadlineMs?: number }) => ({
    lanesFile: {
      lanes: {
        work: {
          concurrency: 1,
          ...policy,
          backoff: { strategy: 'fixed', baseMs: 10, capMs: 700 },
          retryBudget: { ratio: 0.0001, minRetriesPerSecond: 0, windowSeconds: 10, onExhausted: 'defer' },
        },
      },
    },
  });

  it('defers a retry the budget refuses to between half the backoff cap and the cap, and defers it again while the budget still refuses, counting each refusal', async () => {
    harness = await startWorkerHarness(refusingBudgetLane({ attempts: 2 }));
    const h = harness;
    const id = await h.add('work', 'fail', { kind: 'retryable' });
    // A budget that allows nothing refuses the retry after the failure and each time it comes due.
    // A refusal's event comes before the deferral is stored, and its job:retrying only after: wait
    // for the third of those.
    await waitUntil(() => h.events['job:retrying'].filter((e) => e.jobId === id).length >= 3, {
      timeoutMs: 15_000,
      what: 'three deferrals of the job\'s retry',
    });
    const exhausted = h.events['job:retry-budget-exhausted'].filter((e) => e.jobId === id);
    const retrying = h.events['job:retrying'].filter((e) => e.jobId === id);
    const starts = h.events['job:started'].filter((e) => e.jobId === id).map((e) => e.at);

    // The handler ran once: the deferred retry never reached it.
    expect(h.events['job:failed'].filter((e) => e.jobId === id)).toHaveLength(1);
    expect(h.events['job:dead'].filter((e) => e.jobId === id)).toHaveLength(0);
    for (const e of exhausted) expect(e).toMatchObject({ action: 'defer', errorClass: 'handler', allowedInWindow: 0, attempt: 1 });
    expect(retrying.slice(0, 3).map((e) => [e.reason, e.consumesAttempt, e.nextAttempt])).toEqual([
      ['budget_deferred', true, 2],
      ['budget_deferred', false, 2],
      ['budget_deferred', false, 2],
    ]);
    for (const e of retrying) {
      expect(e.delayMs).toBeGreaterThanOrEqual(350);
      expect(e.delayMs).toBeLessThanOrEqual(700);
    }
    expect(starts[1]! - starts[0]!).toBeGreaterThanOrEqual(retrying[0]!.delayMs - 5);
    expect(starts[2]! - starts[1]!).toBeGreaterThanOrEqual(retrying[1]!.delayMs - 5);
    // Deferred again without using an attempt; its history says so.
    expect((await h.queue('work').getJob(id))?.attemptsMade).toBe(1);
    // The failed attempt's row, and one row for its deferred retry that counts the deferrals: the
    // refusals of a long outage do not add a row each.
    const rows = await h.attemptRows('work', id);
    expect(rows).toHaveLength(2);
    expect(rows[0]).toMatchObject({ attempt: 1, errorClass: 'handler', delayMs: retrying[0]!.delayMs });
    expect(rows[0]).not.toHaveProperty('budgetDeferral');
    const deferrals = (rows[1] as { budgetDeferral?: number }).budgetDeferral ?? 0;
    expect(deferrals).toBeGreaterThanOrEqual(3);
    // The row is written before its events: the n-th deferral's is retrying[n - 1].
    await waitUntil(() => h.events['job:retrying'].filter((e) => e.jobId === id).length >= deferrals, { what: 'the events of the deferral in the row' });
    const deferredRetry = h.events['job:retrying'].filter((e) => e.jobId === id)[deferrals - 1]!;
    expect(rows[1]).toMatchObject({
      attempt: 1,
      errorClass: 'handler',
      delayMs: deferredRetry.delayMs,
      budgetDeferral: deferrals,
      message: expect.stringContaining('the handler did not run'),
    });
    const events = bp(await h.streamEvents('work'), LANE_EVENT.retryBudgetExhausted, id);
    expect(events.length).toBeGreaterThanOrEqual(3);
    expect(events[0]).toEqual({
      event: LANE_EVENT.retryBudgetExhausted,
      jobId: id,
      action: 'defer',
      name: 'fail',
      errorClass: 'handler',
      retriesInWindow: exhausted[0]!.retriesInWindow,
      allowedInWindow: 0,
      tenant: 'acme',
      attempt: 1,
      worker: h.config.workerId,
    });
    expect(events[1]).toMatchObject({ action: 'defer', errorClass: 'handler', attempt: 1 });
  });

  it('fails a job whose deferred retry the budget refuses again past its deadline with deadline_exceeded', async () => {
    harness = await startWorkerHarness(refusingBudgetLane({ attempts: 5, deadlineMs: 2500 }));
    const h = harness;
    const id = await h.add('work', 'fail', { kind: 'retryable' });
    const dead = await h.waitForEvent('job:dead', (e) => e.jobId === id, 15_000);

    expect(dead).toMatchObject({ reason: 'deadline_exceeded', errorClass: 'deadline_exceeded' });
    expect(h.events['job:failed'].filter((e) => e.jobId === id && e.errorClass === 'handler')).toHaveLength(1);
    expect(h.events['job:retry-budget-exhausted'].filter((e) => e.jobId === id).length).toBeGreaterThanOrEqual(2);
    expect((await h.queue('work').getJob(id))?.failedReason).toMatch(/deadline_exceeded/);
  });

  it('ends a deferred retry cancelled while its attempt was active as cancelled, without waiting for budget', async () => {
    harness = await startWorkerHarness(refusingBudgetLane({ attempts: 3 }));
    const h = harness;
    const id = await h.add('work', 'fail', { kind: 'retryable' });
    await h.waitForEvent('job:retrying', (e) => e.jobId === id);
    // The cancel came as the attempt failed: kept on the job for its next start.
    await h.redis.hset(h.queue('work').toKey(id), JOB_FIELD.cancelRequested, Date.now());
    const dead = await h.waitForEvent('job:dead', (e) => e.jobId === id, 15_000);

    expect(dead).toMatchObject({ reason: 'cancelled', errorClass: 'cancelled' });
    expect(h.events['job:failed'].filter((e) => e.jobId === id && e.errorClass === 'handler')).toHaveLength(1);
  });

  it('fails a job whose retry the budget refuses with retry_budget_exhausted on a fail lane, keeping the error class in its row', async () => {
    harness = await startWorkerHarness({
      lanesFile: {
        lanes: {
          work: {
            concurrency: 1,
            attempts: 5,
            backoff: { strategy: 'fixed', baseMs: 10, capMs: 700 },
            retryBudget: { ratio: 0, minRetriesPerSecond: 0, windowSeconds: 10, onExhausted: 'fail' },
          },
        },
      },
    });
    const id = await harness.add('work', 'fail', { kind: 'retryable', message: 'upstream down' });
    const dead = await harness.waitForEvent('job:dead', (e) => e.jobId === id);
    const job = await harness.queue('work').getJob(id);

    expect(job!.failedReason).toBe('retry_budget_exhausted');
    expect(job!.attemptsMade).toBe(1);
    expect(dead).toMatchObject({ reason: 'retry_budget_exhausted', errorClass: 'handler' });
    expect(await harness.attemptRows('work', id)).toEqual([
      expect.objectContaining({ errorClass: 'handler', message: 'upstream down', delayMs: null }),
    ]);
    await waitUntil(async () => bp(await harness!.streamEvents('work'), LANE_EVENT.dead, id).length === 1, { what: 'bp:dead' });
    const events = await harness.streamEvents('work');
    const subject = { tenant: 'acme', attempt: 1, worker: harness.config.workerId };
    expect(bp(events, LANE_EVENT.retryBudgetExhausted, id)).toEqual([
      { event: LANE_EVENT.retryBudgetExhausted, jobId: id, action: 'fail', name: 'fail', errorClass: 'handler', retriesInWindow: expect.any(Number), allowedInWindow: 0, ...subject },
    ]);
    expect(bp(events, LANE_EVENT.dead, id)).toEqual([
      { event: LANE_EVENT.dead, jobId: id, name: 'fail', errorClass: 'handler', reason: 'retry_budget_exhausted', attemptsMade: 1, ...subject },
    ]);
  });

  it('publishes each completed attempt, batched into bp:completed_attempts entries, with its run and wait times', async () => {
    harness = await startWorkerHarness({ lanesFile: { lanes: { work: { concurrency: 4 } } } });
    const ids = await Promise.all(Array.from({ length: 20 }, () => harness!.add('work', 'sleep', { ms: 20 })));
    const delayed = await harness.add('work', 'noop', {}, { job: { delay: 1500 } });
    await waitUntil(async () => bp(await harness!.streamEvents('work'), LANE_EVENT.attempt).length === 21, { what: '21 bp:attempt events' });
    const events = bp(await harness.streamEvents('work'), LANE_EVENT.attempt);
    // Completed attempts travel many to an entry, never as bp:attempt entries of their own.
    const entries = await harness.streamEntries('work');
    expect(entries.filter((e) => e.event === LANE_EVENT.attempt)).toHaveLength(0);
    const batches = entries.filter((e) => e.event === LANE_EVENT.completedAttempts);
    expect(batches.length).toBeGreaterThan(0);
    expect(batches.length).toBeLessThan(21);

    expect(new Set(events.map((e) => e.jobId))).toEqual(new Set([...ids, delayed]));
    for (const e of events) {
      expect(e).toMatchObject({ outcome: 'completed', willRetry: false, attempt: 1, tenant: 'acme', worker: harness.config.workerId });
      expect(e.waitMs).toBeGreaterThanOrEqual(0);
    }
    for (const e of events.filter((e) => e.name === 'sleep')) expect(e.runMs).toBeGreaterThanOrEqual(19);
    // The delayed job's wait counts from the end of its delay, not from its enqueue (which would
    // make it at least the 1.5 s delay).
    expect(events.find((e) => e.jobId === delayed)!.waitMs).toBeLessThan(1500);
    const completed = harness.events['job:completed'].find((e) => e.jobId === delayed);
    expect(completed!.waitMs).toBe(events.find((e) => e.jobId === delayed)!.waitMs);
  });
});
