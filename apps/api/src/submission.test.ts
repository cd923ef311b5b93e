import { laneSchema } from '@bullpen/core';
import { checkSubmission, deduplicationId, prepareJob } from './submission';

const policy = laneSchema.parse({ concurrency: 1 });
const now = 1_700_000_000_000;

describe('prepareJob', () => {
  it('wraps the payload with the tenant and uses the given id', () => {
    const prepared = prepareJob({ name: 'noop', data: { a: 1 } }, { tenant: 'acme', policy, jobId: 'j1', nowMs: now });
    expect(prepared).toEqual({
      jobId: 'j1',
      name: 'noop',
      data: { data: { a: 1 }, bullpen: { v: 1, tenant: 'acme' } },
      opts: {},
      initialState: 'waiting',
    });
  });

  it('maps attempts, priority and delay to BullMQ options and predicts the initial state', () => {
    const delayed = prepareJob({ name: 'n', data: {}, delayMs: 500, priority: 3, attempts: 7 }, { tenant: 't', policy, jobId: 'j', nowMs: now });
    expect(delayed.opts).toEqual({ attempts: 7, priority: 3, delay: 500 });
    expect(delayed.initialState).toBe('delayed');
    const prioritized = prepareJob({ name: 'n', data: {}, priority: 3 }, { tenant: 't', policy, jobId: 'j', nowMs: now });
    expect(prioritized.initialState).toBe('prioritized');
    const zeroDelay = prepareJob({ name: 'n', data: {}, delayMs: 0 }, { tenant: 't', policy, jobId: 'j', nowMs: now });
    expect(zeroDelay.opts.delay).toBeUndefined();
  });

  it("records the job's deadline and timeout, falling back to the lane's deadline", () => {
    const own = prepareJob({ name: 'n', data: {}, deadlineMs: 1000, timeoutMs: 50 }, { tenant: 't', policy, jobId: 'j', nowMs: now });
    expect(own.data.bullpen).toEqual({ v: 1, tenant: 't', deadlineAt: now + 1000, timeoutMs: 50 });
    const lanePolicy = laneSchema.parse({ concurrency: 1, deadlineMs: 9000 });
    const inherited = prepareJob({ name: 'n', data: {} }, { tenant: 't', policy: lanePolicy, jobId: 'j', nowMs: now });
    expect(inherited.data.bullpen.deadlineAt).toBe(now + 9000);
  });

  it("turns an idempotency key into BullMQ deduplication with the lane's TTL", () => {
    const prepared = prepareJob({ name: 'n', data: {}, idempotencyKey: 'k' }, { tenant: 't', policy, jobId: 'j', nowMs: now });
    expect(prepared.opts.deduplication).toEqual({ id: deduplicationId('t', 'k'), ttl: policy.idempotencyTtlMs });
  });
});

describe('deduplicationId', () => {
  it('separates tenants and cannot be confused by the separator', () => {
    expect(deduplicationId('acme', 'k')).not.toBe(deduplicationId('beta', 'k'));
    expect(deduplicationId('a', 'b:c')).not.toBe(deduplicationId('a:b', 'c'));
    expect(deduplicationId('acme', 'k')).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('checkSubmission', () => {
  it('rejects a job name outside the lane allow-list, naming the field', () => {
    const restricted = laneSchema.parse({ concurrency: 1, jobNames: ['noop', 'sleep'] });
    expect(checkSubmission({ name: 'cpu', data: {} }, restricted, 'body')).toEqual({
      code: 'job_name_not_allowed',
      errors: [{ field: 'body.name', message: 'expected one of noop, sleep' }],
    });
    expect(checkSubmission({ name: 'noop', data: {} }, restricted, 'body')).toBeUndefined();
  });

  it('accepts any name when the lane has no allow-list', () => {
    expect(checkSubmission({ name: 'anything', data: {} }, policy, 'body')).toBeUndefined();
  });

  it("rejects a delay as long as the lane's deadline when the job has none of its own, and accepts a longer deadline of its own", () => {
    const lane = laneSchema.parse({ concurrency: 1, deadlineMs: 60_000 });
    for (const delayMs of [60_000, 61_000]) {
      expect(checkSubmission({ name: 'n', data: {}, delayMs }, lane, 'body')).toEqual({
        code: 'validation_failed',
        errors: [
          {
            field: 'body.delayMs',
            message: "expected less than the lane's deadlineMs (60000), the deadline in effect without a deadlineMs of its own: the job could never start",
          },
        ],
      });
    }
    expect(checkSubmission({ name: 'n', data: {}, delayMs: 59_999 }, lane, 'body')).toBeUndefined();
    expect(checkSubmission({ name: 'n', data: {}, delayMs: 61_000, deadlineMs: 120_000 }, lane, 'body')).toBeUndefined();
    expect(checkSubmission({ name: 'n', data: {}, delayMs: 61_000, deadlineMs: 61_000 }, lane, 'body')?.errors[0]?.field).toBe('body.deadlineMs');
  });

  it('rejects a deadline that ends before the delay does', () => {
    expect(checkSubmission({ name: 'n', data: {}, delayMs: 1000, deadlineMs: 1000 }, policy, 'body.jobs[2]')).toEqual({
      code: 'validation_failed',
      errors: [{ field: 'body.jobs[2].deadlineMs', message: 'expected more than delayMs: the job could never start' }],
    });
  });
});
