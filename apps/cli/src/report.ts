// `bullpen report`: per lane and tenant figures from lifecycle event logs (a worker's, or the
// exporter's for the whole deployment), streamed line by line so a log of any size is read in
// bounded memory apart from the run times of the window, kept for percentiles.
import { createInterface } from 'node:readline';
import { UsageError } from './config';
import { LostEvents, type LaneLoss } from './lost-events';
import { openLogFiles } from './report-files';
import { RepeatLeases } from './repeat-leases';
import { ReplayedLines } from './replayed-lines';

export interface ReportWindow {
  /** Epoch ms, inclusive. */
  from: number;
  /** Epoch ms, exclusive. */
  to: number;
}

export interface GroupReport {
  lane: string;
  tenant: string;
  started: number;
  succeeded: number;
  failed: number;
  retried: number;
  /** failed / (succeeded + failed); 0 when nothing finished. */
  errorRate: number;
  runMs: { mean: number; p50: number; p95: number; p99: number } | null;
}

export interface Report {
  window: { from: string; to: string };
  /** The files read, in order (rotated files oldest first, then the live one). */
  files: string[];
  /** The time of the oldest line read, in the window or not: after the window's start, the files
   * do not cover all of it. Null when no line was read. */
  oldestLine: string | null;
  /** The time of the newest line read, in the window or not. Null when no line was read. */
  newestLine: string | null;
  linesRead: number;
  corruptLines: number;
  outsideWindow: number;
  /** Exporter lines in the window read before (the same line of the same stream entry): written
   * again after a crash. */
  duplicateLines: number;
  groups: GroupReport[];
  /** Per lane, lane stream entries trimmed before the exporter read them (its events_lost lines)
   * in the window: they gave no lines, so the figures miss their jobs. Empty when none. */
  eventsLost: LaneLoss[];
}

interface Group {
  lane: string;
  tenant: string;
  started: number;
  succeeded: number;
  failed: number;
  retried: number;
  runMs: number[];
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] ?? 0;
}

export class ReportBuilder {
  private readonly groups = new Map<string, Group>();
  linesRead = 0;
  corruptLines = 0;
  outsideWindow = 0;
  duplicateLines = 0;
  /** Epoch ms of the oldest and the newest line read. */
  oldestMs = Infinity;
  newestMs = -Infinity;
  private readonly copies: ReplayedLines;
  private readonly repeats: RepeatLeases;
  private readonly lost = new LostEvents();

  constructor(
    private readonly window: ReportWindow,
    /** Bounds of what is remembered across lines; the defaults suit any exporter. */
    bounds: { entriesPerLane?: number; pendingRetries?: number } = {},
  ) {
    this.copies = new ReplayedLines(bounds.entriesPerLane);
    this.repeats = new RepeatLeases(bounds.pendingRetries);
  }

  /** What is remembered across lines now, bounded whatever the size of the log. */
  get remembered(): { entries: number; pendingRetries: number } {
    return { entries: this.copies.size, pendingRetries: this.repeats.size };
  }

  addLine(line: string): void {
    if (line.trim() === '') return;
    this.linesRead += 1;
    let event: Record<string, unknown>;
    try {
      const parsed: unknown = JSON.parse(line);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
      event = parsed as Record<string, unknown>;
    } catch {
      this.corruptLines += 1;
      return;
    }
    const ts = typeof event.ts === 'string' ? Date.parse(event.ts) : typeof event.ts === 'number' ? event.ts : NaN;
    if (!Number.isFinite(ts) || typeof event.event !== 'string' || typeof event.lane !== 'string') {
      this.corruptLines += 1;
      return;
    }
    if (ts < this.oldestMs) this.oldestMs = ts;
    if (ts > this.newestMs) this.newestMs = ts;
    // About a lane, not a job: neither a start nor a group, and never a copy of a job's line.
    if (event.event === 'events_lost') {
      if (!this.lost.add(event.lane, ts, event, this.window)) this.outsideWindow += 1;
      return;
    }
    // Read before anything is skipped: a retry outside the window still makes its lease inside a
    // repeat, and a line written twice repeats its effect on this state harmlessly.
    const jobId = String(event.job_id);
    let repeatLease = false;
    if (event.event === 'retry_scheduled') this.repeats.retryScheduled(event.lane, jobId, event.attempt, event.next_attempt);
    else if (event.event === 'lease_created') repeatLease = this.repeats.leased(event.lane, jobId, event.attempt);
    const inWindow = ts >= this.window.from && ts < this.window.to;
    // The exporter's lines written again after a crash (replayed-lines.ts) carry their stream_id.
    const copy =
      typeof event.stream_id === 'string' &&
      this.copies.isCopy(event.lane, event.stream_id, `${event.event}\u0000${jobId}\u0000${String(event.attempt)}`, inWindow);
    if (!inWindow) {
      this.outsideWindow += 1;
      return;
    }
    if (copy) {
      this.duplicateLines += 1;
      return;
    }
    const tenant = typeof event.tenant === 'string' && event.tenant !== '' ? event.tenant : '-';
    const key = `${event.lane}\u0000${tenant}`;
    let group = this.groups.get(key);
    if (!group) {
      group = { lane: event.lane, tenant, started: 0, succeeded: 0, failed: 0, retried: 0, runMs: [] };
      this.groups.set(key, group);
    }
    switch (event.event) {
      case 'lease_created': {
        // A job starts once: a later lease of its first attempt (taken back after a stall, or
        // retried without using an attempt) is the same start. A worker's line says so in its
        // attempts_started; the exporter's has null there, and the retry before it tells.
        const again = typeof event.attempts_started === 'number' ? event.attempts_started > 1 : repeatLease;
        if ((event.attempt === 1 || event.attempt === undefined) && !again) group.started += 1;
        break;
      }
      case 'completed':
        group.succeeded += 1;
        if (typeof event.run_ms === 'number' && Number.isFinite(event.run_ms)) group.runMs.push(event.run_ms);
        break;
      case 'failed':
        if (event.final === true) group.failed += 1;
        break;
      case 'retry_scheduled':
        group.retried += 1;
        break;
      default:
        break;
    }
  }

  build(files: string[] = []): Report {
    const groups = [...this.groups.values()]
      .sort((a, b) => a.lane.localeCompare(b.lane) || a.tenant.localeCompare(b.tenant))
      .map((g): GroupReport => {
        const sorted = Float64Array.from(g.runMs).sort();
        const values = Array.from(sorted);
        const finished = g.succeeded + g.failed;
        return {
          lane: g.lane,
          tenant: g.tenant,
          started: g.started,
          succeeded: g.succeeded,
          failed: g.failed,
          retried: g.retried,
          errorRate: finished === 0 ? 0 : g.failed / finished,
          runMs:
            values.length === 0
              ? null
              : {
                  mean: values.reduce((s, v) => s + v, 0) / values.length,
                  p50: percentile(values, 50),
                  p95: percentile(values, 95),
                  p99: percentile(values, 99),
                },
        };
      });
    return {
      window: { from: new Date(this.window.from).toISOString(), to: new Date(this.window.to).toISOString() },
      files,
      oldestLine: Number.isFinite(this.oldestMs) ? new Date(this.oldestMs).toISOString() : null,
      newestLine: Number.isFinite(this.newestMs) ? new Date(this.newestMs).toISOString() : null,
      linesRead: this.linesRead,
      corruptLines: this.corruptLines,
      outsideWindow: this.outsideWindow,
      duplicateLines: this.duplicateLines,
      groups,
      eventsLost: this.lost.build(),
    };
  }
}

/**
 * Reads the logs at `paths`, each with its rotated files unless `rotated` is false. A file none of
 * whose lines is a lifecycle event is refused rather than reported as all corrupt.
 */
export async function buildReport(paths: readonly string[], window: ReportWindow, { rotated = true }: { rotated?: boolean } = {}): Promise<Report> {
  const builder = new ReportBuilder(window);
  const files = await openLogFiles(paths, { rotated });
  try {
    for (const { path, handle } of files) {
      const before = { read: builder.linesRead, corrupt: builder.corruptLines };
      const input = handle.createReadStream({ encoding: 'utf8', start: 0, autoClose: false });
      let first = true;
      for await (const line of createInterface({ input, crlfDelay: Infinity })) {
        builder.addLine(first && line.startsWith('\uFEFF') ? line.slice(1) : line);
        first = false;
      }
      const read = builder.linesRead - before.read;
      if (read > 0 && builder.corruptLines - before.corrupt === read) {
        throw new UsageError(`report: none of the ${read} lines of ${path} is a lifecycle event (a JSON object with ts, event and lane): is it an event log (EVENT_LOG_FILE)?`);
      }
    }
  } finally {
    await Promise.all(files.map((f) => f.handle.close().catch(() => undefined)));
  }
  return builder.build(files.map((f) => f.path));
}

function ms(value: number): string {
  return value >= 1000 ? `${(value / 1000).toFixed(2)}s` : `${Math.round(value)}ms`;
}

export function formatReport(report: Report): string {
  const header = ['lane', 'tenant', 'started', 'succeeded', 'failed', 'retried', 'error%', 'mean', 'p50', 'p95', 'p99'];
  const rows = report.groups.map((g) => [
    g.lane,
    g.tenant,
    String(g.started),
    String(g.succeeded),
    String(g.failed),
    String(g.retried),
    (g.errorRate * 100).toFixed(1),
    g.runMs ? ms(g.runMs.mean) : '-',
    g.runMs ? ms(g.runMs.p50) : '-',
    g.runMs ? ms(g.runMs.p95) : '-',
    g.runMs ? ms(g.runMs.p99) : '-',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ');
  return [
    ...(report.files.length > 1 ? [`files ${report.files.join(', ')}`] : []),
    `window ${report.window.from} .. ${report.window.to}: ${report.linesRead} lines, ${report.corruptLines} corrupt (skipped), ${report.outsideWindow} outside the window${report.duplicateLines > 0 ? `, ${report.duplicateLines} duplicate (skipped)` : ''}`,
    fmt(header),
    ...rows.map(fmt),
  ].join('\n');
}
