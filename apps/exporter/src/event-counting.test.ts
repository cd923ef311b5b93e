import { decodeLaneEvent, encodeLaneEvent, LANE_EVENT, MetricLabels, metricsOf, type AttemptEvent } from '@bullpen/core';
import { countFailures, countLaneBatch, EVENT_METRICS } from './event-counting';
import { LaneDelta, SeriesStore } from './stored-series';

const labels = new MetricLabels({ jobNames: ['noop', 'http'], tenants: ['acme'] });
const attempt = (over: Partial<AttemptEvent>): string[] =>
  encodeLaneEvent({
    event: LANE_EVENT.attempt,
    jobId: '1',
    name: 'noop',
    tenant: 'acme',
    attempt: 1,
    outcome: 'completed',
    willRetry: false,
    runMs: 20,
    waitMs: 5,
    worker: 'w',
    ...over,
  });

function count(entries: string[][], classes: Parameters<typeof countFailures>[2] = []) {
  const result = countLaneBatch('a', entries.map(decodeLaneEvent), labels);
  countFailures('a', result.delta, classes);
  const store = new SeriesStore(metricsOf('exporter-events'));
  store.apply('a', result.delta);
  return { store, failedJobIds: result.failedJobIds, get: (name: string, l: Record<string, string>) => store.counterValue('a', name, { lane: 'a', ...l }) };
}

describe('counting a lane batch', () => {
  it('counts enqueued, completed and stalled from native events, by allow-listed job name', () => {
    const { get } = count([
      ['event', 'added', 'jobId', '1', 'name', 'noop'],
      ['event', 'added', 'jobId', '2', 'name', 'user-secret-name'],
      ['event', 'waiting', 'jobId', '1'],
      ['event', 'completed', 'jobId', '1', 'returnvalue', 'null'],
      ['event', 'stalled', 'jobId', '2'],
    ]);
    expect(get('bullpen_jobs_enqueued_total', { job_name: 'noop' })).toBe(1);
    expect(get('bullpen_jobs_enqueued_total', { job_name: 'other' })).toBe(1);
    expect(get('bullpen_jobs_completed_total', {})).toBe(1);
    expect(get('bullpen_jobs_stalled_total', {})).toBe(1);
    expect(get('bullpen_exporter_events_processed_total', { event: 'other' })).toBe(1);
    expect(get('bullpen_exporter_events_processed_total', { event: 'added' })).toBe(2);
  });

  it('counts terminal failures and dead letters by the error class looked up for each failed job', () => {
    const { get, failedJobIds } = count(
      [
        ['event', 'failed', 'jobId', '7', 'failedReason', 'x'],
        ['event', 'failed', 'jobId', '8', 'failedReason', 'y'],
      ],
      ['validation', 'unknown'],
    );
    expect(failedJobIds).toEqual(['7', '8']);
    expect(get('bullpen_jobs_failed_total', { error_class: 'validation' })).toBe(1);
    expect(get('bullpen_jobs_failed_total', { error_class: 'unknown' })).toBe(1);
    expect(get('bullpen_jobs_dead_lettered_total', { error_class: 'validation' })).toBe(1);
  });

  it('counts attempts, failed attempts, retries and the three histograms from bp:attempt', () => {
    const { get, store } = count([
      attempt({ outcome: 'completed', runMs: 20 }),
      attempt({ outcome: 'failed', errorClass: 'network', willRetry: true, delayMs: 1500, runMs: 3000 }),
      attempt({ outcome: 'failed', errorClass: 'http_5xx', willRetry: false, tenant: 'stranger', name: 'mystery' }),
    ]);
    expect(get('bullpen_job_attempts_total', { job_name: 'noop', tenant: 'acme', outcome: 'completed' })).toBe(1);
    expect(get('bullpen_job_attempts_total', { job_name: 'other', tenant: 'other', outcome: 'failed' })).toBe(1);
    expect(get('bullpen_job_attempts_failed_total', { error_class: 'network' })).toBe(1);
    expect(get('bullpen_job_attempts_failed_total', { error_class: 'http_5xx' })).toBe(1);
    expect(get('bullpen_jobs_retried_total', { error_class: 'network' })).toBe(1);
    expect(get('bullpen_jobs_retried_total', { error_class: 'http_5xx' })).toBe(0);
    // Terminal failures are not counted from bp:attempt: only from BullMQ's failed event.
    expect(get('bullpen_jobs_failed_total', { error_class: 'http_5xx' })).toBe(0);
    const backoff = store.values('bullpen_job_backoff_delay_seconds');
    expect(backoff.find((v) => v.metricName?.endsWith('_sum'))?.value).toBe(1.5);
    const run = store.values('bullpen_job_run_duration_seconds').filter((v) => v.metricName?.endsWith('_count'));
    expect(run.map((v) => v.value).reduce((a, b) => a + b)).toBe(3);
    const wait = store.values('bullpen_job_wait_duration_seconds').find((v) => v.metricName?.endsWith('_sum'));
    expect(wait?.value).toBeCloseTo(0.01);
  });

  it('counts every completed attempt of a bp:completed_attempts entry, with its run and wait times', () => {
    const { get, store } = count([
      encodeLaneEvent({
        event: LANE_EVENT.completedAttempts,
        worker: 'w',
        attempts: [
          { jobId: '1', name: 'noop', tenant: 'acme', attempt: 1, runMs: 20, waitMs: 5 },
          { jobId: '2', name: 'noop', tenant: 'acme', attempt: 2, runMs: 40, waitMs: 15 },
          { jobId: '3', name: 'mystery', tenant: 'stranger', attempt: 1, runMs: 0, waitMs: 0 },
        ],
      }),
    ]);
    expect(get('bullpen_job_attempts_total', { job_name: 'noop', tenant: 'acme', outcome: 'completed' })).toBe(2);
    expect(get('bullpen_job_attempts_total', { job_name: 'other', tenant: 'other', outcome: 'completed' })).toBe(1);
    expect(get('bullpen_exporter_events_processed_total', { event: 'bp:completed_attempts' })).toBe(1);
    const run = store.values('bullpen_job_run_duration_seconds').filter((v) => v.metricName?.endsWith('_count'));
    expect(run.map((v) => v.value).reduce((a, b) => a + b)).toBe(3);
    const wait = store.values('bullpen_job_wait_duration_seconds').filter((v) => v.metricName?.endsWith('_sum'));
    expect(wait.map((v) => v.value).reduce((a, b) => a + b)).toBeCloseTo(0.02);
  });

  it('sums attempts per series to exactly what counting them one at a time gives', () => {
    const rows = Array.from({ length: 40 }, (_, i) => ({
      jobId: String(i),
      name: ['noop', 'http', 'mystery'][i % 3] as string,
      tenant: i % 4 === 0 ? 'stranger' : 'acme',
      attempt: 1,
      runMs: (i * 37) % 1500,
      waitMs: (i * 11) % 90,
    }));
    const failedAttempts = rows.slice(0, 7).map((row) => ({ ...row, outcome: 'failed' as const, errorClass: 'network' as const, willRetry: false }));
    const entries = [
      encodeLaneEvent({ event: LANE_EVENT.completedAttempts, worker: 'w', attempts: rows.slice(0, 20) }),
      ...failedAttempts.map((row) => attempt(row)),
      attempt({ name: 'http', tenant: 'acme', runMs: 3, waitMs: 1 }),
      encodeLaneEvent({ event: LANE_EVENT.completedAttempts, worker: 'w', attempts: rows.slice(20) }),
    ];
    const { delta } = countLaneBatch('a', entries.map(decodeLaneEvent), labels);

    // The reference: every attempt on its own, in stream order.
    const expected = new LaneDelta();
    const one = (row: { name: string; tenant: string; runMs: number; waitMs: number }, outcome: 'completed' | 'failed') => {
      const jobName = labels.jobName(row.name);
      expected.inc(EVENT_METRICS.attempts, { lane: 'a', job_name: jobName, tenant: labels.tenant(row.tenant), outcome });
      expected.observe(EVENT_METRICS.runDuration, { lane: 'a', job_name: jobName, outcome }, row.runMs / 1000);
      expected.observe(EVENT_METRICS.waitDuration, { lane: 'a', job_name: jobName }, row.waitMs / 1000);
    };
    rows.slice(0, 20).forEach((row) => one(row, 'completed'));
    failedAttempts.forEach((row) => one(row, 'failed'));
    one({ name: 'http', tenant: 'acme', runMs: 3, waitMs: 1 }, 'completed');
    rows.slice(20).forEach((row) => one(row, 'completed'));

    const attemptFields = (map: Map<string, number>) =>
      Object.fromEntries([...map].filter(([field]) => /^bullpen_job_(attempts_total|run_duration_seconds|wait_duration_seconds)\|/.test(field)));
    expect(attemptFields(delta.ints)).toEqual(attemptFields(expected.ints));
    expect(attemptFields(delta.floats)).toEqual(attemptFields(expected.floats));
    expect(Object.keys(attemptFields(delta.ints)).length).toBeGreaterThan(10);
  });

  it('counts budget exhaustion by action and rejections by their count', () => {
    const { get } = count([
      encodeLaneEvent({ event: LANE_EVENT.retryBudgetExhausted, jobId: '1', action: 'defer' }),
      encodeLaneEvent({ event: LANE_EVENT.retryBudgetExhausted, jobId: '2', action: 'fail' }),
      encodeLaneEvent({ event: LANE_EVENT.rejected, count: 25, reason: 'queue_full' }),
      encodeLaneEvent({ event: LANE_EVENT.dead, jobId: '3', name: 'noop', errorClass: 'handler', reason: 'attempts' }),
    ]);
    expect(get('bullpen_retry_budget_exhausted_total', { action: 'defer' })).toBe(1);
    expect(get('bullpen_retry_budget_exhausted_total', { action: 'fail' })).toBe(1);
    expect(get('bullpen_jobs_rejected_total', { reason: 'queue_full' })).toBe(25);
    expect(get('bullpen_jobs_dead_lettered_total', { error_class: 'handler' })).toBe(0);
    expect(get('bullpen_exporter_events_processed_total', { event: 'bp:dead' })).toBe(1);
  });

  it('counts every attempt of an entry with a negative run time, read as 0, and a row that does not parse as malformed', () => {
    // 120 completed jobs were counted as 116 attempts: a worker whose clock stepped back wrote a
    // negative run time, and its entry was dropped whole.
    const rows = ['["1","noop","acme",1,20,5]', '["2","noop","acme",1,-1850,0]', '["3","noop","acme",1,40,-3]', '["4","noop","acme",1]'];
    const { get, store } = count([['event', LANE_EVENT.completedAttempts, 'worker', 'w', 'attempts', `[${rows.join(',')}]`], attempt({ runMs: -700 })]);
    expect(get('bullpen_job_attempts_total', { job_name: 'noop', tenant: 'acme', outcome: 'completed' })).toBe(4);
    expect(get('bullpen_exporter_negative_timings_total', {})).toBe(3);
    expect(get('bullpen_exporter_events_processed_total', { event: 'bp:completed_attempts' })).toBe(1);
    expect(get('bullpen_exporter_events_processed_total', { event: 'malformed' })).toBe(1);
    const runs = store.values('bullpen_job_run_duration_seconds');
    expect(runs.filter((v) => v.metricName?.endsWith('_count')).reduce((a, v) => a + v.value, 0)).toBe(4);
    expect(runs.filter((v) => v.metricName?.endsWith('_sum')).reduce((a, v) => a + v.value, 0)).toBeCloseTo(0.06);
  });

  it('counts malformed entries as processed and nothing else', () => {
    const { get, store } = count([['event', 'completed'], ['no-event', 'x']]);
    expect(get('bullpen_exporter_events_processed_total', { event: 'malformed' })).toBe(2);
    expect(get('bullpen_jobs_completed_total', {})).toBe(0);
    expect(store.values('bullpen_jobs_completed_total')).toEqual([]);
  });
});
