import type { Job } from 'bullmq';
import { formatAttemptLogRow } from '@bullpen/core';
import { jobStatusView, parseAttempts, type JobStateView } from './views';

const row = (fields: Record<string, unknown>) => JSON.stringify({ type: 'attempt', ...fields });

describe('parseAttempts', () => {
  it('reads the attempt rows the worker writes, oldest first', () => {
    const attempts = parseAttempts([
      row({ attempt: 1, errorClass: 'network', message: 'ECONNRESET', delayMs: 1200, worker: 'w1', ts: 1_700_000_000_000 }),
      row({ attempt: 2, errorClass: 'timeout', message: 'took too long', worker: 'w2', ts: 1_700_000_001_000 }),
    ]);
    expect(attempts).toEqual([
      { attempt: 1, errorClass: 'network', message: 'ECONNRESET', delayMs: 1200, worker: 'w1', at: '2023-11-14T22:13:20.000Z' },
      { attempt: 2, errorClass: 'timeout', message: 'took too long', delayMs: null, worker: 'w2', at: '2023-11-14T22:13:21.000Z' },
    ]);
  });

  it('skips log lines that are not attempt rows', () => {
    const attempts = parseAttempts([
      'plain text a handler logged',
      JSON.stringify({ type: 'note', attempt: 1 }),
      '{"type":"attempt","attempt":"one"}',
      row({ attempt: 3, errorClass: 'handler' }),
    ]);
    expect(attempts).toEqual([{ attempt: 3, errorClass: 'handler', message: '', delayMs: null, worker: null, at: null }]);
  });

  it('reads rows written by the shared formatter, the worker side of the contract', () => {
    const line = formatAttemptLogRow({ attempt: 2, errorClass: 'rate_limited', message: 'slow down', delayMs: 5000, worker: 'w', ts: 1_700_000_000_000 });
    expect(parseAttempts([line])).toEqual([
      { attempt: 2, errorClass: 'rate_limited', message: 'slow down', delayMs: 5000, worker: 'w', at: '2023-11-14T22:13:20.000Z' },
    ]);
  });
});

describe('jobStatusView', () => {
  // BullMQ leaves the reason of the last failed attempt on the job when it is retried, redriven
  // or completes.
  const retried = {
    id: 'j1',
    name: 'fetch',
    timestamp: 1_700_000_000_000,
    attemptsMade: 2,
    failedReason: 'upstream 502',
    returnvalue: { ok: true },
  } as unknown as Job;
  const history = [formatAttemptLogRow({ attempt: 1, errorClass: 'http_5xx', message: 'upstream 502', delayMs: 300, worker: 'w', ts: 1_700_000_000_500 })];

  it('shows no failure on a job that is not failed: its earlier failures are in its attempts', () => {
    for (const state of ['completed', 'waiting', 'delayed', 'active'] as JobStateView[]) {
      const view = jobStatusView(retried, 'tool_call', state, history);
      expect({ state, failedReason: view.failedReason, errorClass: view.errorClass }).toEqual({ state, failedReason: null, errorClass: null });
      expect(view.attempts).toEqual([expect.objectContaining({ attempt: 1, errorClass: 'http_5xx', message: 'upstream 502' })]);
    }
  });

  it("shows a failed job's reason and the error class of its last attempt", () => {
    const view = jobStatusView(retried, 'tool_call', 'failed', history);
    expect(view).toMatchObject({ state: 'failed', failedReason: 'upstream 502', errorClass: 'http_5xx' });
  });
});
