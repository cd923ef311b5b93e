import { eligibleAt, isFirstStart, lostStarts, previousWorker, type JobStarts, type StartHistory } from './job-history';

const job = (over: Partial<JobStarts>): JobStarts => ({ attemptsStarted: 1, attemptsMade: 0, timestamp: 1000, opts: {}, ...over });
const history = (over: Partial<StartHistory>): StartHistory => ({ uncountedStarts: 0, rateLimitedRetries: 0, lease: undefined, lastRow: undefined, cancelRequested: false, budgetDeferrals: 0, ...over });

describe('job history rules', () => {
  it('knows a first start', () => {
    expect(isFirstStart(job({}))).toBe(true);
    expect(isFirstStart(job({ attemptsStarted: 2, attemptsMade: 1 }))).toBe(false);
    expect(isFirstStart(job({ attemptsStarted: 2 }))).toBe(false);
  });

  it('counts starts that never finished, leaving out starts that used no attempt', () => {
    expect(lostStarts(job({ attemptsStarted: 3, attemptsMade: 2 }), history({}))).toBe(0);
    expect(lostStarts(job({ attemptsStarted: 2, attemptsMade: 0 }), history({}))).toBe(1);
    expect(lostStarts(job({ attemptsStarted: 4, attemptsMade: 0 }), history({ uncountedStarts: 3 }))).toBe(0);
    expect(lostStarts(job({ attemptsStarted: 5, attemptsMade: 0 }), history({ uncountedStarts: 3 }))).toBe(1);
  });

  it('names the previous worker only from the lease of the previous start', () => {
    const h = history({ lease: { ats: 1, worker: 'w1' } });
    expect(previousWorker(job({ attemptsStarted: 2 }), h)).toBe('w1');
    expect(previousWorker(job({ attemptsStarted: 3 }), h)).toBeUndefined();
  });

  it('takes the later of enqueue plus delay and the end of the last backoff as the time the job could run', () => {
    expect(eligibleAt(job({ opts: { delay: 500 } }), undefined)).toBe(1500);
    const row = { type: 'attempt' as const, attempt: 1, errorClass: 'network' as const, message: '', worker: 'w', ts: 5000 };
    expect(eligibleAt(job({ attemptsStarted: 2, attemptsMade: 1 }), history({ lastRow: { ...row, delayMs: 300 } }))).toBe(5300);
    expect(eligibleAt(job({ attemptsStarted: 2, attemptsMade: 1 }), history({ lastRow: { ...row, delayMs: null } }))).toBe(5000);
  });

  it('counts the wait of a redriven job from its redrive, not from its enqueue or its attempts before', () => {
    const row = { type: 'attempt' as const, attempt: 3, errorClass: 'handler' as const, message: '', worker: 'w', ts: 5000, delayMs: null };
    expect(eligibleAt(job({}), undefined, 90_000)).toBe(90_000);
    expect(eligibleAt(job({ attemptsStarted: 2, attemptsMade: 1 }), history({ lastRow: row }), 90_000)).toBe(90_000);
  });
});
