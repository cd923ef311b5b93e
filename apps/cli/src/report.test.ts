import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { EventLog, LIFECYCLE_EVENT, lifecycleLine } from '@bullpen/core';
import { buildReport, formatReport, percentile, ReportBuilder, type Report } from './report';
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

  it("warns that the figures miss the events the exporter lost, per lane, and gives them in --json, without counting its events_lost lines as jobs or corrupt", async () => {
    // An exporter log: 3 jobs, then an outage in which 10 jobs (55 stream entries) were trimmed
    // unread (its line written twice, as when its batch is counted again after a failed commit,
    // the trim having gone on meanwhile), then 3 jobs; and a loss of another lane the day before.
    const lostFixture = path.join(__dirname, '..', 'fixtures', 'events-lost.jsonl');
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (s: string) => out.push(s), err: (s: string) => err.push(s) };
    expect(await run(['report', lostFixture, '--json', '--since', '2026-01-01T00:00:00Z', '--until', '2026-01-02T00:00:00Z'], {}, io)).toBe(0);
    const parsed = JSON.parse(out.join('')) as Report;
    expect(parsed.eventsLost).toEqual([{ lane: 'file_read', lost: 55, from: '2026-01-01T10:00:03.002Z', to: '2026-01-01T10:05:00.000Z' }]);
    expect(parsed).toMatchObject({ linesRead: 15, corruptLines: 0, outsideWindow: 1, duplicateLines: 0 });
    expect(parsed.groups).toEqual([expect.objectContaining({ lane: 'file_read', tenant: 'acme', started: 6, succeeded: 6 })]);
    expect(err.join('')).toBe(
      'bullpen: warning: lane file_read: the figures miss 55 lane stream events (each job makes several), trimmed from the stream ' +
        'before the exporter read them, from 2026-01-01T10:00:03.002Z to 2026-01-01T10:05:00.000Z: its jobs of that time are ' +
        'undercounted (bullpen_exporter_events_lost_total; raise EVENTS_MAX_LEN)\n',
    );

    // A window that ends before the loss began: nothing missed, nothing said.
    err.length = 0;
    out.length = 0;
    expect(await run(['report', lostFixture, '--json', '--since', '2026-01-01T10:00:00Z', '--until', '2026-01-01T10:00:03.001Z'], {}, io)).toBe(0);
    expect((JSON.parse(out.join('')) as Report).eventsLost).toEqual([]);
    expect(err.join('')).toBe('');
    // A second loss from the same position (nothing was read between two outages) is another loss.
    const builder = new ReportBuilder(window);
    const lostLine = (lost: number, entriesBefore: number, ts: string) =>
      JSON.stringify({ ts, event: 'events_lost', lane: 'a', lost, from_ts: null, from_stream_id: '0-0', entries_before: entriesBefore, to_stream_id: null });
    builder.addLine(lostLine(4, 0, '2026-01-01T10:00:00.000Z'));
    builder.addLine(lostLine(6, 4, '2026-01-01T11:00:00.000Z'));
    expect(builder.build()).toMatchObject({ eventsLost: [{ lane: 'a', lost: 10, from: null, to: '2026-01-01T11:00:00.000Z' }], groups: [], corruptLines: 0 });
    // The other lane's loss, in its own window, with a start it cannot know.
    expect((await buildReport([lostFixture], { from: Date.parse('2025-12-31T00:00:00Z'), to: Date.parse('2026-01-01T00:00:00Z') })).eventsLost).toEqual([
      { lane: 'critic', lost: 7, from: null, to: '2025-12-31T12:00:00.000Z' },
    ]);
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

  describe('over rotated, compressed and wrong files', () => {
    let dir: string;
    const io = () => {
      const out: string[] = [];
      const err: string[] = [];
      return { out, err, io: { out: (s: string) => out.push(s), err: (s: string) => err.push(s) } };
    };
    beforeEach(() => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-report-'));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    /** A log written by the event log writer the apps use, rotating every few lines: one job
     * started and completed a minute, from 10:00. */
    async function rotatedLog(jobs: number): Promise<string> {
      const file = path.join(dir, 'exporter.jsonl');
      const log = new EventLog({ file, maxBytes: 1500, maxFiles: 3 });
      for (let i = 0; i < jobs; i += 1) {
        const at = Date.parse('2026-01-01T10:00:00Z') + i * 60_000;
        const who = { lane: 'a', jobId: String(i), jobName: 'noop', tenant: 'acme', attempt: 1, workerId: 'w' };
        log.write(lifecycleLine(LIFECYCLE_EVENT.leaseCreated, who, { attempts_started: null }, at, { stream_id: `${at}-0` }));
        log.write(lifecycleLine(LIFECYCLE_EVENT.completed, who, { run_ms: 5, wait_ms: 1, slot_wait_ms: null, handler_ms: null }, at, { stream_id: `${at}-0` }));
        await log.flush();
      }
      await log.close();
      return file;
    }

    it('reads the rotated files of a log, oldest first, each once however it is named', async () => {
      const file = await rotatedLog(12);
      expect(readdirSync(dir).sort()).toEqual(['exporter.jsonl', 'exporter.jsonl.1', 'exporter.jsonl.2', 'exporter.jsonl.3']);
      const all = await buildReport([file], window);
      expect(all.files).toEqual([`${file}.3`, `${file}.2`, `${file}.1`, file]);
      const liveOnly = await buildReport([file], window, { rotated: false });
      expect(liveOnly.files).toEqual([file]);
      const started = (r: typeof all) => r.groups[0]?.started ?? 0;
      expect(started(liveOnly)).toBeLessThan(started(all));
      // As a shell expands exporter.jsonl*: newest first, every file named.
      const globbed = await buildReport([file, `${file}.1`, `${file}.2`, `${file}.3`], window);
      expect(globbed.files).toEqual(all.files);
      expect(globbed.groups).toEqual(all.groups);
      const out = io();
      expect(await run(['report', file, '--no-rotated', '--json', '--since', '2026-01-01T00:00:00Z', '--until', '2026-01-02T00:00:00Z'], {}, out.io)).toBe(0);
      expect((JSON.parse(out.out.join('')) as { files: string[] }).files).toEqual([file]);
    });

    it('warns when the oldest line read is after the start of the window', async () => {
      const file = await rotatedLog(12);
      const oldest = (await buildReport([file], window)).oldestLine ?? '';
      const covered = io();
      expect(await run(['report', file, '--since', oldest, '--until', '2026-01-02T00:00:00Z'], {}, covered.io)).toBe(0);
      expect(covered.err.join('')).toBe('');
      const uncovered = io();
      expect(await run(['report', file, '--since', '2026-01-01T09:00:00Z', '--until', '2026-01-02T00:00:00Z'], {}, uncovered.io)).toBe(0);
      expect(uncovered.err.join('')).toMatch(
        new RegExp(`warning: the oldest line read \\(${oldest.replace(/\./g, '\\.')}\\) is after the window's start \\(2026-01-01T09:00:00\\.000Z\\)`),
      );
    });

    it('says plainly that no event is inside the window, and which times the log covers, when the window is before or after the log', async () => {
      const file = await rotatedLog(12);
      // The twelfth job's lines, at 10:11, are the newest; the oldest are what rotation kept.
      const { oldestLine } = await buildReport([file], window);
      const newestLine = '2026-01-01T10:11:00.000Z';
      for (const [since, until] of [
        ['2020-01-01T00:00:00Z', '2020-01-02T00:00:00Z'],
        ['2027-01-01T00:00:00Z', '2027-01-02T00:00:00Z'],
      ]) {
        const out = io();
        expect({ since, code: await run(['report', file, '--since', since ?? '', '--until', until ?? ''], {}, out.io) }).toEqual({ since, code: 0 });
        const start = new Date(since ?? '').toISOString();
        const end = new Date(until ?? '').toISOString();
        expect(out.err.join('')).toBe(`bullpen: warning: no events inside the window ${start} .. ${end}; the log covers ${oldestLine} .. ${newestLine}\n`);
      }
      const empty = path.join(dir, 'empty.jsonl');
      writeFileSync(empty, '');
      const out = io();
      expect(await run(['report', empty, '--since', '2026-01-01T00:00:00Z', '--until', '2026-01-02T00:00:00Z'], {}, out.io)).toBe(0);
      expect(out.err.join('')).toBe('bullpen: warning: no events inside the window 2026-01-01T00:00:00.000Z .. 2026-01-02T00:00:00.000Z: the log holds no lifecycle event\n');
    });

    it('refuses a gzip-compressed file, a file that is not an event log and a directory with a clear message (exit 2)', async () => {
      const file = await rotatedLog(3);
      const gz = path.join(dir, 'old.jsonl.gz');
      writeFileSync(gz, gzipSync(Buffer.from('{"ts":"2026-01-01T10:00:00Z","event":"completed","lane":"a"}\n'.repeat(50))));
      const binary = path.join(dir, 'core');
      writeFileSync(binary, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)));
      const sub = path.join(dir, 'events');
      mkdirSync(sub);
      writeFileSync(path.join(sub, 'exporter.jsonl'), '');
      const cases: Array<[string, RegExp]> = [
        [gz, /old\.jsonl\.gz is gzip-compressed; bullpen writes its event logs as plain text: decompress it first \(gunzip -k /],
        [binary, /none of the \d+ lines of .*core is a lifecycle event/],
        [sub, /events is a directory: name a log in it, such as .*events\/exporter\.jsonl/],
      ];
      for (const [target, message] of cases) {
        const out = io();
        expect({ target, code: await run(['report', file, target], {}, out.io) }).toEqual({ target, code: 2 });
        expect(out.err.join('')).toMatch(message);
        expect(out.out).toEqual([]);
      }
    });

    it('refuses an empty window: --since not before --until, or --since with --window (exit 2)', async () => {
      const out = io();
      expect(await run(['report', fixture, '--since', '2026-01-02T00:00:00Z', '--until', '2026-01-01T00:00:00Z'], {}, out.io)).toBe(2);
      expect(await run(['report', fixture, '--since', '2026-01-01T00:00:00Z', '--window', '1h'], {}, out.io)).toBe(2);
      expect(out.err.join('')).toMatch(/the window is empty: its start 2026-01-02T00:00:00\.000Z is not before its end 2026-01-01T00:00:00\.000Z/);
      expect(out.err.join('')).toMatch(/--window or --since, not both/);
    });
  });
});
