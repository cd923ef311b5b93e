// `bullpen report` over the exporter's log, with lines made by the exporter's own line builder:
// what it remembers to skip lines written twice (after an exporter crash) stays bounded however
// long the log, lines outside the window leave nothing behind, and copies are still skipped.
import type { DecodedLaneEvent } from '@bullpen/core';
import { ReportBuilder, type ReportWindow } from '../apps/cli/src/report';
import { laneEventLines } from '../apps/exporter/src/lifecycle-lines';

const T0 = Date.parse('2026-01-01T10:00:00Z');
const day: ReportWindow = { from: Date.parse('2026-01-01T00:00:00Z'), to: Date.parse('2026-01-02T00:00:00Z') };

/** The exporter's lines of entry `n` of a lane: a completed attempt (two lines), or with `retry` a
 * failed one that is retried (four lines). */
function entry(lane: string, n: number, retry = false): string[] {
  const id = `${T0 + n}-0`;
  const base = { jobId: `${lane}-${n}`, name: 'noop', tenant: 'acme', attempt: 1, worker: 'w', runMs: 0, waitMs: 1 };
  const ev: DecodedLaneEvent = retry
    ? { event: 'bp:attempt', ...base, outcome: 'failed', errorClass: 'handler', willRetry: true, delayMs: 10, retryable: true, retry: { reason: 'backoff', strategy: 'fixed', source: 'strategy', nextAttempt: 2 } }
    : { event: 'bp:attempt', ...base, outcome: 'completed', willRetry: false };
  return laneEventLines(lane, id, ev).map((line) => JSON.stringify(line));
}

const lines = (lane: string, from: number, to: number) => Array.from({ length: to - from }, (_, i) => entry(lane, from + i)).flat();

describe("bullpen report over the exporter's log", () => {
  it('remembers a bounded number of entries however long the log, and still skips a replayed batch', () => {
    const builder = new ReportBuilder(day, { entriesPerLane: 1000 });
    let most = 0;
    for (let n = 0; n < 100_000; n += 1) {
      for (const lane of ['a', 'b']) for (const line of entry(lane, n)) builder.addLine(line);
      if (n % 1000 === 999) most = Math.max(most, builder.remembered.entries);
    }
    expect(most).toBe(2000);
    // A batch of 1,000 entries of lane a, written again after a crash.
    for (const line of lines('a', 99_000, 100_000)) builder.addLine(line);
    const report = builder.build();
    expect(report.duplicateLines).toBe(2000);
    expect(report.groups).toEqual([
      expect.objectContaining({ lane: 'a', started: 100_000, succeeded: 100_000 }),
      expect.objectContaining({ lane: 'b', started: 100_000, succeeded: 100_000 }),
    ]);
    expect(builder.remembered.entries).toBeLessThanOrEqual(2000);
  });

  it('remembers nothing of lines outside the window', () => {
    const builder = new ReportBuilder({ from: Date.parse('2026-02-01T00:00:00Z'), to: Date.parse('2026-02-02T00:00:00Z') });
    for (const line of lines('a', 0, 20_000)) builder.addLine(line);
    for (let n = 0; n < 5000; n += 1) for (const line of entry('a', 20_000 + n, true)) builder.addLine(line);
    expect(builder.build().outsideWindow).toBe(60_000);
    expect(builder.remembered).toEqual({ entries: 0, pendingRetries: 0 });
  });

  it('skips a batch of one entry written again right after itself', () => {
    const builder = new ReportBuilder(day);
    for (const line of [...entry('a', 1, true), ...entry('a', 1, true), ...entry('a', 2)]) builder.addLine(line);
    const report = builder.build();
    expect(report.duplicateLines).toBe(4);
    expect(report.groups).toEqual([expect.objectContaining({ started: 2, succeeded: 1, retried: 1 })]);
  });

  it('counts the line a crash cut short once, from the copy written after it', () => {
    const builder = new ReportBuilder(day);
    const first = entry('a', 1, true);
    const cut = [...first.slice(0, 2), (first[2] as string).slice(0, 40)];
    for (const line of [...lines('b', 0, 3), ...cut, ...lines('b', 3, 5), ...first, ...entry('a', 2)]) builder.addLine(line);
    const report = builder.build();
    expect(report.corruptLines).toBe(1);
    expect(report.duplicateLines).toBe(2);
    expect(report.groups.find((g) => g.lane === 'a')).toMatchObject({ started: 2, succeeded: 1, retried: 1 });
  });

  it('skips the copies of the last entries of the window when the entries after them fall outside it', () => {
    // The window ends between entries 1 and 2; a replay writes 1 and 2 again.
    const builder = new ReportBuilder({ from: day.from, to: T0 + 2 });
    for (const line of [...entry('a', 1), ...entry('a', 2), ...entry('a', 1), ...entry('a', 2)]) builder.addLine(line);
    const report = builder.build();
    expect(report.duplicateLines).toBe(2);
    expect(report.groups).toEqual([expect.objectContaining({ started: 1, succeeded: 1 })]);
  });
});
