import path from 'node:path';
import { buildReport, formatReport, percentile, ReportBuilder } from './report';
import { run } from './main';

const fixture = path.join(__dirname, '..', 'fixtures', 'events.jsonl');
const window = { from: Date.parse('2026-01-01T00:00:00Z'), to: Date.parse('2026-01-02T00:00:00Z') };

describe('bullpen report', () => {
  it('computes per lane and tenant figures from a log, skipping and counting corrupt lines', async () => {
    const report = await buildReport([fixture], window);
    expect(report.linesRead).toBe(22);
    // not JSON, bad ts, no ts, an array
    expect(report.corruptLines).toBe(4);
    expect(report.outsideWindow).toBe(1);
    expect(report.groups).toEqual([
      {
        lane: 'critic',
        tenant: 'beta',
        started: 1,
        succeeded: 2,
        failed: 0,
        retried: 0,
        errorRate: 0,
        runMs: { mean: 1000, p50: 1000, p95: 1000, p99: 1000 },
      },
      {
        lane: 'tool_call',
        tenant: 'acme',
        started: 5,
        succeeded: 4,
        failed: 1,
        retried: 1,
        errorRate: 0.2,
        // run times 100, 300, 200, 400
        runMs: { mean: 250, p50: 200, p95: 400, p99: 400 },
      },
    ]);
    expect(formatReport(report)).toMatch(/tool_call\s+acme\s+5\s+4\s+1\s+1\s+20\.0\s+250ms\s+200ms\s+400ms\s+400ms/);
  });

  it('skips exporter lines written again after a crash (same lane, stream_id and event) and counts them', () => {
    const builder = new ReportBuilder(window);
    const line = (event: string, extra: Record<string, unknown>) =>
      JSON.stringify({ ts: '2026-01-01T10:00:00.000Z', event, lane: 'a', job_id: '1', job_name: 'noop', tenant: 'acme', attempt: 1, worker_id: 'w', ...extra });
    const batch = [
      line('lease_created', { attempts_started: null, stream_id: '1-0' }),
      line('completed', { run_ms: 10, wait_ms: 0, slot_wait_ms: null, handler_ms: null, stream_id: '1-0' }),
    ];
    for (const l of [...batch, ...batch]) builder.addLine(l);
    // A worker's lines have no stream_id: the same line twice is two events.
    builder.addLine(line('completed', { run_ms: 10 }));
    builder.addLine(line('completed', { run_ms: 10 }));
    const report = builder.build();
    expect(report.duplicateLines).toBe(2);
    expect(report.groups).toEqual([expect.objectContaining({ lane: 'a', tenant: 'acme', started: 1, succeeded: 3 })]);
    expect(formatReport(report)).toMatch(/2 duplicate \(skipped\)/);
  });

  it("counts a job's start once when its first attempt is leased again (reclaimed after a stall)", () => {
    const builder = new ReportBuilder(window);
    const line = (event: string, worker: string, extra: Record<string, unknown>) =>
      JSON.stringify({ ts: '2026-01-01T10:00:00.000Z', event, lane: 'a', job_id: '7', job_name: 'noop', tenant: 'acme', attempt: 1, worker_id: worker, ...extra });
    builder.addLine(line('lease_created', 'w1', { attempts_started: 1 }));
    builder.addLine(line('lease_created', 'w2', { attempts_started: 2 }));
    builder.addLine(line('reclaim_winner', 'w2', { previous_worker: 'w1', lost_starts: 1 }));
    builder.addLine(line('completed', 'w2', { run_ms: 10 }));
    expect(builder.build().groups).toEqual([expect.objectContaining({ lane: 'a', started: 1, succeeded: 1 })]);
  });

  it('uses nearest-rank percentiles', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    expect(percentile(values, 50)).toBe(50);
    expect(percentile(values, 95)).toBe(95);
    expect(percentile(values, 99)).toBe(99);
    expect(percentile([], 99)).toBe(0);
  });

  it('prints JSON with --json and honours --since/--until', async () => {
    const out: string[] = [];
    const code = await run(
      ['report', fixture, '--json', '--since', '2026-01-01T10:00:03Z', '--until', '2026-01-01T10:00:07.100Z'],
      {},
      { out: (s) => out.push(s), err: () => undefined },
    );
    expect(code).toBe(0);
    const parsed = JSON.parse(out.join('')) as { groups: { lane: string; started: number; failed: number }[] };
    expect(parsed.groups.find((g) => g.lane === 'tool_call')).toMatchObject({ started: 2, failed: 1 });
  });

  it('exits 2 with a clear message on bad arguments', async () => {
    const err: string[] = [];
    const io = { out: () => undefined, err: (s: string) => err.push(s) };
    expect(await run(['report'], {}, io)).toBe(2);
    expect(await run(['report', fixture, '--window', 'soon'], {}, io)).toBe(2);
    expect(await run(['frobnicate'], {}, io)).toBe(2);
    expect(await run(['report', '/no/such/file.jsonl'], {}, io)).toBe(2);
    expect(err.join('')).toMatch(/expected at least one events file/);
    expect(err.join('')).toMatch(/--window: expected a duration/);
    expect(err.join('')).toMatch(/unknown command "frobnicate"/);
  });

  it('exits 3 when the API cannot be reached and 2 when no key is set', async () => {
    const io = { out: () => undefined, err: () => undefined };
    expect(await run(['lanes'], { BULLPEN_API_URL: 'http://127.0.0.1:9', BULLPEN_API_KEY: 'k' }, io)).toBe(3);
    expect(await run(['lanes'], {}, io)).toBe(2);
  });
});
