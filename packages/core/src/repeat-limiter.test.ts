import { OTHER_MESSAGES, RepeatLimiter } from './repeat-limiter';

describe('RepeatLimiter', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('admits the first occurrence of a message and reports its repeats once per interval', () => {
    const summaries: Array<[string, number]> = [];
    const limiter = new RepeatLimiter({ intervalMs: 1000, onRepeats: (key, n) => summaries.push([key, n]) });
    const admitted = Array.from({ length: 5000 }, () => limiter.admit('boom')).filter(Boolean);
    expect(admitted).toHaveLength(1);
    expect(limiter.admit('other')).toBe(true);
    jest.advanceTimersByTime(1000);
    expect(summaries).toEqual([['boom', 4999]]);
    // Still repeating: counted into the next window, not logged.
    expect(limiter.admit('boom')).toBe(false);
    jest.advanceTimersByTime(1000);
    expect(summaries).toEqual([['boom', 4999], ['boom', 1]]);
    limiter.close();
  });

  it('forgets a message after a quiet interval, so that its next occurrence is logged at once', () => {
    const summaries: Array<[string, number]> = [];
    const limiter = new RepeatLimiter({ intervalMs: 1000, onRepeats: (key, n) => summaries.push([key, n]) });
    expect(limiter.admit('boom')).toBe(true);
    jest.advanceTimersByTime(1000);
    expect(limiter.admit('boom')).toBe(true);
    expect(summaries).toEqual([]);
    expect(jest.getTimerCount()).toBe(1);
    jest.advanceTimersByTime(1000);
    expect(jest.getTimerCount()).toBe(0); // nothing tracked: no timer left running
    limiter.close();
  });

  it('counts messages beyond maxKeys together, so that varying messages cannot flood the log either', () => {
    const summaries: Array<[string, number]> = [];
    const limiter = new RepeatLimiter({ intervalMs: 1000, maxKeys: 3, onRepeats: (key, n) => summaries.push([key, n]) });
    const admitted = Array.from({ length: 100 }, (_, i) => limiter.admit(`job ${i} failed`)).filter(Boolean);
    expect(admitted).toHaveLength(3);
    limiter.close();
    expect(summaries).toEqual([[OTHER_MESSAGES, 97]]);
  });

  it('reports what it still counts when closed', () => {
    const summaries: Array<[string, number]> = [];
    const limiter = new RepeatLimiter({ intervalMs: 60_000, onRepeats: (key, n) => summaries.push([key, n]) });
    limiter.admit('boom');
    limiter.admit('boom');
    limiter.close();
    expect(summaries).toEqual([['boom', 1]]);
    expect(jest.getTimerCount()).toBe(0);
  });
});
