import { decodeLaneEvent, encodeLaneEvent, eventsLostLine, LANE_EVENT, type BullpenLaneEvent } from '@bullpen/core';
import { eventsLost, laneEventLines } from './lifecycle-lines';

const AT = Date.parse('2026-01-02T03:04:05.678Z');
const id = `${AT}-3`;
const lines = (ev: BullpenLaneEvent) => laneEventLines('critic', id, decodeLaneEvent(encodeLaneEvent(ev)));
const envelope = (event: string, over: Record<string, unknown> = {}) => ({
  ts: new Date(AT).toISOString(),
  event,
  lane: 'critic',
  job_id: '7',
  job_name: 'http',
  tenant: 'acme',
  attempt: 2,
  worker_id: 'w1',
  ...over,
});
const attempt = {
  event: LANE_EVENT.attempt,
  jobId: '7',
  name: 'http',
  tenant: 'acme',
  attempt: 2,
  runMs: 40,
  waitMs: 5,
  worker: 'w1',
} as const;

describe('lifecycle lines from lane stream entries', () => {
  it('writes the lease (at its start) and the success of a completed attempt, in the common envelope', () => {
    expect(lines({ ...attempt, outcome: 'completed', willRetry: false })).toEqual([
      { ...envelope('lease_created', { ts: new Date(AT - 40).toISOString() }), attempts_started: null, stream_id: id },
      { ...envelope('completed'), run_ms: 40, wait_ms: 5, slot_wait_ms: null, handler_ms: null, stream_id: id },
    ]);
  });

  it('writes the failure, the backoff and the retry of a failed attempt that is retried', () => {
    const retry = { reason: 'rate_limited', strategy: 'exponential', source: 'retry_after', retryAfterMs: 250, nextAttempt: 2 };
    const out = lines({ ...attempt, outcome: 'failed', errorClass: 'rate_limited', willRetry: true, delayMs: 250, retryable: true, retry });
    expect(out.map((l) => l.event)).toEqual(['lease_created', 'failed', 'backoff_applied', 'retry_scheduled']);
    expect(out.slice(1)).toEqual([
      { ...envelope('failed'), error_class: 'rate_limited', final: false, retryable: true, run_ms: 40, delay_ms: 250, stream_id: id },
      { ...envelope('backoff_applied'), delay_ms: 250, strategy: 'exponential', source: 'retry_after', retry_after_ms: 250, stream_id: id },
      { ...envelope('retry_scheduled'), reason: 'rate_limited', delay_ms: 250, error_class: 'rate_limited', next_attempt: 2, stream_id: id },
    ]);
  });

  it('writes null for how a retry was decided when an older worker did not publish it', () => {
    const out = lines({ ...attempt, outcome: 'failed', errorClass: 'http_5xx', willRetry: true, delayMs: 250 });
    expect(out.slice(1)).toEqual([
      { ...envelope('failed'), error_class: 'http_5xx', final: false, retryable: null, run_ms: 40, delay_ms: 250, stream_id: id },
      { ...envelope('backoff_applied'), delay_ms: 250, strategy: null, source: null, retry_after_ms: null, stream_id: id },
      { ...envelope('retry_scheduled'), reason: null, delay_ms: 250, error_class: 'http_5xx', next_attempt: null, stream_id: id },
    ]);
  });

  it('marks the last failure final, and adds max_retries_reached from bp:dead when the attempts ran out', () => {
    expect(lines({ ...attempt, outcome: 'failed', errorClass: 'http_5xx', willRetry: false })[1]).toMatchObject({ event: 'failed', final: true });
    const dead = { event: LANE_EVENT.dead, jobId: '7', name: 'http', errorClass: 'http_5xx', tenant: 'acme', attempt: 2, worker: 'w1' } as const;
    expect(lines({ ...dead, reason: 'attempts_exhausted', attemptsMade: 2 })).toEqual([
      { ...envelope('max_retries_reached'), error_class: 'http_5xx', attempts_made: 2, stream_id: id },
    ]);
    expect(lines({ ...dead, reason: 'permanent_error' })).toEqual([]);
  });

  it('writes the final failure of a job failed without an attempt (stalled too often) from bp:dead', () => {
    const ev = { event: LANE_EVENT.dead, jobId: '7', name: 'http', errorClass: 'stalled', reason: 'stalled', withoutAttempt: true, attempt: 1 } as const;
    expect(lines(ev)).toEqual([
      { ...envelope('failed', { tenant: null, attempt: 1, worker_id: null }), error_class: 'stalled', final: true, reason: 'stalled', run_ms: null, stream_id: id },
    ]);
  });

  it('writes the reclaim of a job whose worker died, naming that worker', () => {
    const ev = { event: LANE_EVENT.reclaimed, jobId: '7', name: 'http', tenant: 'acme', attempt: 2, worker: 'w1', lostStarts: 1 } as const;
    expect(lines({ ...ev, previousWorker: 'w0' })).toEqual([{ ...envelope('reclaim_winner'), previous_worker: 'w0', lost_starts: 1, stream_id: id }]);
    expect(lines(ev)).toEqual([{ ...envelope('reclaim_winner'), previous_worker: null, lost_starts: 1, stream_id: id }]);
  });

  it('writes a refused retry with the envelope, and null for what an older worker did not publish', () => {
    const full = { event: LANE_EVENT.retryBudgetExhausted, jobId: '7', action: 'defer', name: 'http', errorClass: 'http_5xx', retriesInWindow: 4, allowedInWindow: 4, tenant: 'acme', attempt: 2, worker: 'w1' } as const;
    expect(lines(full)).toEqual([
      { ...envelope('retry_budget_exhausted'), action: 'defer', error_class: 'http_5xx', retries_in_window: 4, allowed_in_window: 4, stream_id: id },
    ]);
    expect(lines({ event: LANE_EVENT.retryBudgetExhausted, jobId: '7', action: 'fail' })).toEqual([
      {
        ...envelope('retry_budget_exhausted', { job_name: null, tenant: null, attempt: null, worker_id: null }),
        action: 'fail',
        error_class: null,
        retries_in_window: null,
        allowed_in_window: null,
        stream_id: id,
      },
    ]);
  });

  it('writes nothing for entries that are not lifecycle events', () => {
    expect(laneEventLines('critic', id, decodeLaneEvent(['event', 'added', 'jobId', '7', 'name', 'http']))).toEqual([]);
    expect(laneEventLines('critic', id, decodeLaneEvent(['event', 'completed', 'jobId', '7']))).toEqual([]);
    expect(laneEventLines('critic', id, decodeLaneEvent(['event', 'bp:attempt']))).toEqual([]);
  });

  it('says entries trimmed before they were read in an events_lost line about the lane, with no job fields', () => {
    const stream = { length: 2, lastGeneratedId: `${AT + 9000}-0`, firstEntryId: `${AT + 5000}-1`, entriesAdded: 60 };
    expect(eventsLostLine(eventsLost('critic', 40, id, 18, stream))).toEqual({
      ts: new Date(AT + 5000).toISOString(),
      event: 'events_lost',
      lane: 'critic',
      lost: 40,
      from_ts: new Date(AT).toISOString(),
      from_stream_id: id,
      entries_before: 18,
      to_stream_id: `${AT + 5000}-1`,
    });
    // A stream trimmed empty from its start: they end at its last entry, and began who knows when.
    const emptied = { ...stream, length: 0, firstEntryId: undefined };
    expect(eventsLostLine(eventsLost('critic', 60, '0-0', 0, emptied))).toMatchObject({
      ts: new Date(AT + 9000).toISOString(),
      from_ts: null,
      from_stream_id: '0-0',
      to_stream_id: null,
    });
  });
});
