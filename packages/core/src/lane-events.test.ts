import fc from 'fast-check';
import { parseAttemptLogRow } from './attempt-log';
import { attemptsOf, decodeLaneEvent, decodeLaneEventBuffers, DECODED_EVENT_NAMES, encodeLaneEvent, LANE_EVENT, type BullpenLaneEvent } from './lane-events';

describe('lane events', () => {
  const attempt: BullpenLaneEvent = {
    event: LANE_EVENT.attempt,
    jobId: '42',
    name: 'http',
    tenant: 'acme',
    attempt: 2,
    outcome: 'failed',
    errorClass: 'http_5xx',
    willRetry: true,
    runMs: 120.5,
    waitMs: 7,
    delayMs: 2000,
    worker: 'host:1',
  };

  it('encodes each bullpen event as flat string pairs and decodes it back unchanged', () => {
    const events: BullpenLaneEvent[] = [
      attempt,
      {
        ...attempt,
        retryable: true,
        retry: { reason: 'rate_limited', strategy: 'exponential', source: 'retry_after', retryAfterMs: 2000, nextAttempt: 2 },
      },
      { ...attempt, willRetry: false, delayMs: undefined, retryable: false },
      { ...attempt, outcome: 'completed', errorClass: undefined, willRetry: false, delayMs: undefined },
      {
        event: LANE_EVENT.completedAttempts,
        worker: 'host:1',
        attempts: [
          { jobId: '1', name: 'noop', tenant: 'acme', attempt: 1, runMs: 0, waitMs: 3 },
          { jobId: '2', name: 'with "quotes"\tand tabs', tenant: '', attempt: 3, runMs: 12.5, waitMs: 0 },
        ],
      },
      { event: LANE_EVENT.completedAttempts, worker: 'host:1', attempts: [], flush: { writer: '0f3a', seq: 17 } },
      { event: LANE_EVENT.retryBudgetExhausted, jobId: '7', action: 'defer' },
      { event: LANE_EVENT.dead, jobId: '9', name: 'fail', errorClass: 'deadline_exceeded', reason: 'deadline_exceeded' },
      {
        event: LANE_EVENT.retryBudgetExhausted,
        jobId: '7',
        action: 'fail',
        name: 'http',
        errorClass: 'http_5xx',
        retriesInWindow: 4,
        allowedInWindow: 4,
        tenant: 'acme',
        attempt: 2,
        worker: 'host:1',
      },
      {
        event: LANE_EVENT.dead,
        jobId: '9',
        name: 'fail',
        errorClass: 'stalled',
        reason: 'stalled',
        attemptsMade: 1,
        withoutAttempt: true,
        tenant: 'acme',
        attempt: 1,
        worker: 'host:1',
      },
      { event: LANE_EVENT.reclaimed, jobId: '5', name: 'sleep', lostStarts: 1, previousWorker: 'host:2', tenant: 'acme', attempt: 1, worker: 'host:1' },
      { event: LANE_EVENT.reclaimed, jobId: '5', name: 'sleep', lostStarts: 2, attempt: 1, worker: 'host:1' },
      { event: LANE_EVENT.rejected, count: 3, reason: 'queue_full' },
    ];
    for (const ev of events) {
      const fields = encodeLaneEvent(ev);
      expect(fields.length % 2).toBe(0);
      for (const f of fields) expect(typeof f).toBe('string');
      const decoded = decodeLaneEvent(fields) as unknown as Record<string, unknown>;
      const expected = Object.fromEntries(Object.entries(ev).filter(([, v]) => v !== undefined));
      expect(decoded).toEqual(expected);
    }
  });

  it('puts errorClass only on failed attempts and delayMs only when a retry follows', () => {
    const completed = encodeLaneEvent({ ...attempt, outcome: 'completed', willRetry: false });
    expect(completed).not.toContain('errorClass');
    expect(completed).not.toContain('delayMs');
    expect(encodeLaneEvent({ ...attempt, willRetry: false })).not.toContain('delayMs');
  });

  it('decodes the native BullMQ events the exporter counts, with their fields', () => {
    expect(decodeLaneEvent(['event', 'added', 'jobId', '1', 'name', 'noop'])).toEqual({ event: 'added', jobId: '1', name: 'noop' });
    expect(decodeLaneEvent(['event', 'completed', 'jobId', '1', 'returnvalue', '{}', 'prev', 'active'])).toEqual({
      event: 'completed',
      jobId: '1',
    });
    expect(decodeLaneEvent(['event', 'failed', 'jobId', '2', 'failedReason', 'boom', 'prev', 'active'])).toEqual({
      event: 'failed',
      jobId: '2',
      failedReason: 'boom',
    });
    expect(decodeLaneEvent(['event', 'stalled', 'jobId', '3'])).toEqual({ event: 'stalled', jobId: '3' });
  });

  it('reads other BullMQ events and unknown bp: events as other, without throwing', () => {
    expect(decodeLaneEvent(['event', 'waiting', 'jobId', '1'])).toEqual({ event: 'other', name: 'waiting' });
    expect(decodeLaneEvent(['event', 'bp:from_the_future', 'x', '1'])).toEqual({ event: 'other', name: 'bp:from_the_future' });
  });

  it('reads malformed entries as malformed, naming the problem', () => {
    expect(decodeLaneEvent([])).toMatchObject({ event: 'malformed', problem: 'no event field' });
    expect(decodeLaneEvent(['event', 'completed'])).toMatchObject({ event: 'malformed', name: 'completed', problem: 'missing jobId' });
    const bad = encodeLaneEvent(attempt).map((v, i, a) => (a[i - 1] === 'runMs' ? 'fast' : v));
    expect(decodeLaneEvent(bad)).toMatchObject({ event: 'malformed', problem: 'runMs is not a number' });
    expect(decodeLaneEvent(['event', 'bp:rejected', 'count', '-1', 'reason', 'queue_full'])).toMatchObject({ event: 'malformed' });
    expect(decodeLaneEvent(['event', 'bp:retry_budget_exhausted', 'jobId', '1', 'action', 'explode'])).toMatchObject({
      event: 'malformed',
    });
    // An odd trailing field is ignored rather than misread.
    expect(decodeLaneEvent(['event', 'stalled', 'jobId', '3', 'dangling'])).toEqual({ event: 'stalled', jobId: '3' });
  });

  it('folds an error class outside the bounded set into unknown', () => {
    const fields = encodeLaneEvent(attempt).map((v, i, a) => (a[i - 1] === 'errorClass' ? 'ENOTCOOL' : v));
    expect(decodeLaneEvent(fields)).toMatchObject({ errorClass: 'unknown' });
  });

  it('writes attempt rows the API and the exporter read back with the shared parser', () => {
    // recordAttempt writes rows with formatAttemptLogRow; the exporter reads them with parseAttemptLogRow.
    expect(parseAttemptLogRow('{"type":"attempt","attempt":1,"errorClass":"network"}')?.errorClass).toBe('network');
    expect(parseAttemptLogRow('not json')).toBeUndefined();
  });

  it('reads every row of a bp:completed_attempts entry as a completed attempt of its worker', () => {
    const fields = encodeLaneEvent({
      event: LANE_EVENT.completedAttempts,
      worker: 'host:1',
      attempts: [{ jobId: '5', name: 'noop', tenant: 'acme', attempt: 2, runMs: 4, waitMs: 1 }],
    });
    expect(attemptsOf(decodeLaneEvent(fields))).toEqual([
      { event: LANE_EVENT.attempt, jobId: '5', name: 'noop', tenant: 'acme', attempt: 2, outcome: 'completed', willRetry: false, runMs: 4, waitMs: 1, worker: 'host:1' },
    ]);
    expect(attemptsOf(decodeLaneEvent(['event', 'stalled', 'jobId', '3']))).toEqual([]);
  });

  it('reports a bp:completed_attempts entry whose attempts field does not parse as malformed', () => {
    const entry = (attempts: string) => ['event', LANE_EVENT.completedAttempts, 'worker', 'w', 'attempts', attempts];
    expect(decodeLaneEvent(entry('not json'))).toMatchObject({ event: 'malformed', problem: 'attempts is not JSON' });
    expect(decodeLaneEvent(entry('{}'))).toMatchObject({ event: 'malformed', problem: 'attempts is not an array' });
    expect(decodeLaneEvent(['event', LANE_EVENT.completedAttempts, 'worker', 'w'])).toMatchObject({ event: 'malformed', problem: 'missing attempts' });
    expect(decodeLaneEvent([...entry('[]'), 'flush', 'nocolon'])).toMatchObject({ event: 'malformed', problem: 'flush is not <writer>:<seq>' });
    expect(decodeLaneEvent([...entry('[]'), 'flush', 'w:-1'])).toMatchObject({ event: 'malformed', problem: 'flush is not <writer>:<seq>' });
  });

  it('keeps the other rows of a bp:completed_attempts entry when one does not parse, and counts it', () => {
    const entry = (attempts: string) => ['event', LANE_EVENT.completedAttempts, 'worker', 'w', 'attempts', attempts];
    const ev = decodeLaneEvent(entry('[["1","n","t",1,2],["2","n","t",1,5,0],"row",["","n","t",1,5,0],["3","n","t",1,"x",0]]'));
    expect(ev).toEqual({
      event: LANE_EVENT.completedAttempts,
      worker: 'w',
      attempts: [{ jobId: '2', name: 'n', tenant: 't', attempt: 1, runMs: 5, waitMs: 0 }],
      malformedRows: 4,
    });
  });

  it('reads a negative run time among valid rows as 0, keeping every attempt of the entry, and counts it', () => {
    // A worker whose wall clock stepped back while it timed job b (before attempts were timed on
    // the monotonic clock): the entry's other attempts happened all the same.
    const fields = encodeLaneEvent({
      event: LANE_EVENT.completedAttempts,
      worker: 'w1',
      attempts: [
        { jobId: 'a', name: 'noop', tenant: 'acme', attempt: 1, runMs: 12, waitMs: 3 },
        { jobId: 'b', name: 'noop', tenant: 'acme', attempt: 1, runMs: -1850, waitMs: 0 },
        { jobId: 'c', name: 'noop', tenant: 'acme', attempt: 1, runMs: 40, waitMs: -2 },
      ],
    });
    const ev = decodeLaneEvent(fields);
    expect(ev).toMatchObject({ event: LANE_EVENT.completedAttempts, negativeDurations: 2 });
    expect(ev).not.toHaveProperty('malformedRows');
    expect(attemptsOf(ev).map((a) => [a.jobId, a.runMs, a.waitMs])).toEqual([
      ['a', 12, 3],
      ['b', 0, 0],
      ['c', 40, 0],
    ]);
    // A bp:attempt (a failed attempt) timed across the step is read the same way.
    const failed = encodeLaneEvent(attempt).map((v, i, a) => (a[i - 1] === 'runMs' ? '-700' : v));
    expect(decodeLaneEvent(failed)).toMatchObject({ event: LANE_EVENT.attempt, runMs: 0, negativeDurations: 1 });
  });

  describe('read as Buffers (decodeLaneEventBuffers)', () => {
    const asBuffers = (fields: readonly string[]) => fields.map((f) => Buffer.from(f));

    it('decodes the busiest BullMQ entries on their own path, to what the string path decodes', () => {
      for (const fields of [
        ['event', 'completed', 'jobId', '5f8247f9', 'returnvalue', '{"ok":true}', 'prev', 'active'],
        ['event', 'active', 'jobId', '5f8247f9', 'prev', 'waiting'],
        ['event', 'completed', 'jobId', '', 'prev', 'active'],
        ['event', 'completed', 'prev', 'active'],
        ['event', 'added', 'jobId', '1', 'name', 'noop'],
        ['event', 'waiting', 'event', 'completed', 'jobId', '1', 'jobId', '2'],
        ['jobId', '1'],
        [],
        encodeLaneEvent(attempt),
      ]) {
        expect(decodeLaneEventBuffers(asBuffers(fields))).toEqual(decodeLaneEvent(fields));
      }
    });

    it('agrees with the string path on any entry, known names or not, valid or not', () => {
      const name = fc.oneof(fc.constantFrom(...DECODED_EVENT_NAMES, 'active', 'waiting', ''), fc.string());
      const field = fc.oneof(fc.constantFrom('event', 'jobId', 'name', 'attempts', 'outcome', 'runMs'), fc.string());
      const value = fc.oneof(name, fc.string(), fc.constantFrom('1', '-1', '[]', '[["1","n","t",1,2,3]]'));
      const entry = fc.array(fc.oneof(field, value), { maxLength: 12 });
      fc.assert(
        fc.property(entry, (fields) => {
          expect(decodeLaneEventBuffers(asBuffers(fields))).toEqual(decodeLaneEvent(fields));
        }),
        { numRuns: 2000 },
      );
    });

    it('agrees with the string path on arbitrary bytes, which ioredis would have read as UTF-8', () => {
      const bytes = fc.oneof(fc.uint8Array({ maxLength: 12 }), fc.constantFrom('event', 'completed', 'jobId', 'active').map((s) => new Uint8Array(Buffer.from(s))));
      fc.assert(
        fc.property(fc.array(bytes, { maxLength: 10 }), (raw) => {
          const fields = raw.map((b) => Buffer.from(b));
          expect(decodeLaneEventBuffers(fields)).toEqual(decodeLaneEvent(fields.map((f) => f.toString())));
        }),
        { numRuns: 2000 },
      );
    });
  });
});
