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
});
