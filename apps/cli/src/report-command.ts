// `bullpen report`: the command's options, and the warning when the files do not reach back to
// the start of the window.
import { parseArgs } from 'node:util';
import { parseDuration, parseTime } from './args';
import { UsageError } from './config';
import type { Out } from './io';
import { buildReport, formatReport, type Report } from './report';

export const REPORT_USAGE = `report <events.jsonl...> [--window 24h | --since ISO] [--until ISO] [--json] [--no-rotated]
                                                per lane and tenant figures from lifecycle event logs;
                                                reads each file's rotated <file>.N too, oldest first`;

export async function report(args: string[], io: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      window: { type: 'string' },
      since: { type: 'string' },
      until: { type: 'string' },
      json: { type: 'boolean' },
      'no-rotated': { type: 'boolean' },
    },
  });
  if (positionals.length === 0) throw new UsageError('report: expected at least one events file');
  if (values.since !== undefined && values.window !== undefined) throw new UsageError('report: --window or --since, not both');
  const to = values.until !== undefined ? parseTime('--until', values.until) : Date.now();
  const from = values.since !== undefined ? parseTime('--since', values.since) : to - parseDuration('--window', values.window ?? '24h');
  if (from >= to) {
    throw new UsageError(`report: the window is empty: its start ${new Date(from).toISOString()} is not before its end ${new Date(to).toISOString()}`);
  }
  const result = await buildReport(positionals, { from, to }, { rotated: values['no-rotated'] !== true });
  io.out(values.json ? JSON.stringify(result, null, 2) : formatReport(result));
  const warning = coverageWarning(result);
  if (warning !== undefined) io.err(`bullpen: warning: ${warning}\n`);
  return 0;
}

/** What the figures leave out of the window, when the files do not cover all of it. */
function coverageWarning(result: Report): string | undefined {
  const { window, oldestLine, newestLine } = result;
  const inWindow = result.linesRead - result.corruptLines - result.outsideWindow;
  if (oldestLine === null || newestLine === null) return `no events inside the window ${window.from} .. ${window.to}: the log holds no lifecycle event`;
  if (inWindow === 0) return `no events inside the window ${window.from} .. ${window.to}; the log covers ${oldestLine} .. ${newestLine}`;
  if (Date.parse(oldestLine) > Date.parse(window.from)) {
    return (
      `the oldest line read (${oldestLine}) is after the window's start (${window.from}): ` +
      `the figures cover ${oldestLine} .. ${window.to} only (older lines were rotated away, or were never written)`
    );
  }
  return undefined;
}
