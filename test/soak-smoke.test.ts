// `npm run soak` works end to end and its checks bite: a tiny soak (3,000 jobs across the four
// lanes, two workers, the exporter) against the suite's Redis passes and accounts for every job;
// the same soak with jobs removed behind bullpen's back fails its loss check and names the
// number missing; the RSS trend it judges flat by flags a process that keeps growing; and with
// --tracing on, the processes' spans reach its OTLP sink and are counted.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runBenchScript, type ScriptRun } from './support/bench-script';

const RUN_TIMEOUT_MS = 110_000;

interface Run extends ScriptRun {
  /** The soak's JSON result, parsed at this boundary and read field by field below. */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  report: Record<string, any>;
}

async function soak(out: string, args: string[]): Promise<Run> {
  const run = await runBenchScript('soak.js', ['--sample-ms', '500', '--out', out, ...args], RUN_TIMEOUT_MS - 10_000);
  return { ...run, report: existsSync(out) ? JSON.parse(readFileSync(out, 'utf8')) : {} };
}

describe('the soak (tiny run)', () => {
  let dir: string;
  let clean: Run;
  let lossy: Run;
  let traced: Run;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-soak-smoke-'));
    // Side by side: each run has its own key prefix and its own processes.
    [clean, lossy, traced] = await Promise.all([
      soak(path.join(dir, 'clean.json'), ['--jobs', '3000']),
      soak(path.join(dir, 'lossy.json'), ['--jobs', '1000', '--workers', '1', '--drop-jobs', '7']),
      soak(path.join(dir, 'traced.json'), ['--jobs', '1000', '--workers', '1', '--tracing', 'on']),
    ]);
  }, RUN_TIMEOUT_MS);

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 0 and prints its summary when every job is accounted for', () => {
    expect({ code: clean.code, signal: clean.signal, tail: clean.code === 0 ? '' : clean.output.slice(-4000) }).toEqual({ code: 0, signal: null, tail: '' });
    expect(clean.output).toContain('bullpen soak: 3,000 jobs accepted of 3,000');
    expect(clean.output).toContain('soak PASSED');
  });

  it('ends every accepted job completed or dead-lettered, as its kind says it must', () => {
    const loss = clean.report.checks.noLoss;
    expect(loss).toMatchObject({ met: true, accepted: 3000, countedEnqueued: 3000, missing: 0, unfinishedAtEnd: 0, exporterEventsLost: 0 });
    expect(loss.deadLettered).toBe(loss.expectedDeadLettered);
    expect(loss.deadLettered).toBeGreaterThan(0);
    expect(loss.completed + loss.deadLettered).toBe(3000);
    expect(Object.keys(clean.report.sent.byKind).sort()).toEqual(['cpu', 'exhausted', 'fast', 'permanent', 'rateLimited', 'slow', 'transient']);
  });

  it('samples the RSS of both workers and the exporter, and Redis memory within the retention bound', () => {
    expect(Object.keys(clean.report.rss).sort()).toEqual(['api', 'exporter', 'worker-1', 'worker-2']);
    for (const t of Object.values<Record<string, unknown>>(clean.report.rss)) expect(t.endMb).toBeGreaterThan(0);
    expect(clean.report.checks.rssFlat.met).toBeNull();
    expect(clean.report.checks.redisBounded).toMatchObject({ met: true, lanesOverRetention: [], measuredSizesWithinAssumed: true });
    expect(clean.report.redis.peakMb).toBeLessThanOrEqual(clean.report.redis.boundMb);
    for (const k of Object.values<{ completed: number; completedLimit: number; failed: number; failedLimit: number }>(clean.report.retained)) {
      expect(k.completed).toBeLessThanOrEqual(k.completedLimit);
      expect(k.failed).toBeLessThanOrEqual(k.failedLimit);
    }
  });

  it('fails, naming the number missing, when jobs vanish from Redis', () => {
    expect({ code: lossy.code, signal: lossy.signal }).toEqual({ code: 1, signal: null });
    expect(lossy.report.checks.noLoss).toMatchObject({ met: false, accepted: 1000, missing: 7, droppedOnPurpose: 7 });
    expect(lossy.output).toContain('soak FAILED');
    // The other checks still pass: the failure is the loss, nothing else.
    expect(lossy.report.checks.redisBounded.met).toBe(true);
    expect(lossy.report.checks.processesUp.met).toBe(true);
  });

  it('with --tracing on, passes with every process tracing and counts the spans they export', () => {
    expect({ code: traced.code, signal: traced.signal, tail: traced.code === 0 ? '' : traced.output.slice(-4000) }).toEqual({ code: 0, signal: null, tail: '' });
    expect(traced.report.config.tracing).toBe('on');
    expect(traced.report.checks.noLoss).toMatchObject({ met: true, accepted: 1000, missing: 0 });
    const { byService, spans, unparsed } = traced.report.tracing as { byService: Record<string, number>; spans: number; unparsed: number };
    expect(unparsed).toBe(0);
    // An attempt span for every start, and a producer span for every job plus a server span per request.
    expect(byService['bullpen-worker']).toBeGreaterThanOrEqual(1000);
    expect(byService['bullpen-api']).toBeGreaterThan(1000);
    expect(spans).toBe(Object.values(byService).reduce((a, b) => a + b, 0));
    expect(traced.output).toMatch(/tracing at 100% sampling: [\d,]+ spans received/);
    // Without the option the soak traces nothing.
    expect(clean.report.tracing).toBeUndefined();
  });

  it('judges a steadily growing RSS not flat and a noisy level one flat', () => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { trend } = require('../bench/lib/memory-trend') as {
      trend: (samples: Sample[], pick: (s: Sample) => number, options: object) => { flat: boolean | null; slopeMbPer100kJobs: number };
    };
    type Sample = { jobs: number; mb: number };
    const series = (mb: (jobs: number, i: number) => number): Sample[] => Array.from({ length: 200 }, (_, i) => ({ jobs: i * 5000, mb: mb(i * 5000, i) }));
    const options = { warmupJobs: 100_000, totalJobs: 995_000, toleranceMb: 16, tolerancePct: 10, judge: true };
    const growing = trend(series((jobs) => 150 + jobs / 25_000), (s) => s.mb, options);
    const level = trend(series((_, i) => 150 + (i % 7) * 2), (s) => s.mb, options);
    expect(growing.flat).toBe(false);
    expect(growing.slopeMbPer100kJobs).toBeCloseTo(4, 1);
    expect(level.flat).toBe(true);
  });
});
