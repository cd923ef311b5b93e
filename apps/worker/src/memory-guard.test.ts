import { MemoryGuard } from './memory-guard';

describe('MemoryGuard', () => {
  it('stops intake above the RSS limit and resumes only below 90% of it', () => {
    let rss = 100;
    const guard = new MemoryGuard({ maxRssBytes: 1000, heapWarnBytes: 10_000, sample: () => ({ rss, heapUsed: 1 }) });
    const seen: string[] = [];
    guard.on('memory:over-limit', () => seen.push('over'));
    guard.on('memory:recovered', () => seen.push('recovered'));

    guard.check();
    expect(guard.paused).toBe(false);
    rss = 1001;
    guard.check();
    expect(guard.paused).toBe(true);
    rss = 950; // under the limit but above 90%: still paused
    guard.check();
    expect(guard.paused).toBe(true);
    rss = 899;
    guard.check();
    expect(guard.paused).toBe(false);
    expect(seen).toEqual(['over', 'recovered']);
  });

  it('warns once when the heap passes its threshold', () => {
    let heapUsed = 10;
    const guard = new MemoryGuard({ maxRssBytes: 1e12, heapWarnBytes: 100, sample: () => ({ rss: 1, heapUsed }) });
    const warnings: number[] = [];
    guard.on('memory:heap-warning', (s) => warnings.push(s.heapUsed));
    guard.check();
    heapUsed = 150;
    guard.check();
    guard.check();
    expect(guard.heapWarning).toBe(true);
    heapUsed = 50;
    guard.check();
    expect(guard.heapWarning).toBe(false);
    expect(warnings).toEqual([150]);
  });

  describe('sampling', () => {
    afterEach(() => jest.useRealTimers());

    it('samples ten times as often near the limit and while intake is stopped, so a burst after resuming is caught in time', () => {
      jest.useFakeTimers();
      let rss = 100;
      let samples = 0;
      const guard = new MemoryGuard({
        maxRssBytes: 1000,
        heapWarnBytes: 10_000,
        intervalMs: 1000,
        sample: () => {
          samples += 1;
          return { rss, heapUsed: 1 };
        },
      });
      guard.start();
      expect(samples).toBe(1);
      jest.advanceTimersByTime(999);
      expect(samples).toBe(1); // far below the limit: once a second
      jest.advanceTimersByTime(1);
      expect(samples).toBe(2);

      rss = 850; // 85% of the limit
      jest.advanceTimersByTime(1000);
      expect(samples).toBe(3);
      jest.advanceTimersByTime(100);
      expect(samples).toBe(4); // near the limit: every 100 ms

      rss = 1200; // a burst of leases carries it over
      jest.advanceTimersByTime(100);
      expect(guard.paused).toBe(true);
      rss = 880; // recovered: intake resumes, and the guard keeps watching closely
      jest.advanceTimersByTime(100);
      expect(guard.paused).toBe(false);
      rss = 1100;
      jest.advanceTimersByTime(100);
      expect(guard.paused).toBe(true);
      guard.close();
      const before = samples;
      jest.advanceTimersByTime(10_000);
      expect(samples).toBe(before);
    });
  });
});
