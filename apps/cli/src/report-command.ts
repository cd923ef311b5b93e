// `bullpen report`: the command's options, the warning when the files do not reach back to the
// start of the window, and the one when events were lost before the exporter read them.
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
  for (const loss of lossWarnings(result)) io.err(`bullpen: warning: ${loss}\n`);
  return 0;
}

/** Per lane, the events lost before the exporter read them: the figures miss their jobs. */
function lossWarnings(result: Report): string[] {
  return result.eventsLost.map(
    ({ lane, lost, from, to }) =>
      `lane ${lane}: the figures miss ${lost} lane stream event${lost === 1 ? '' : 's'} (each job makes several), ` +
      `trimmed from the stream before the exporter read them, from ${from ?? 'the stream start'} to ${to}: ` +
      `its jobs of that time are undercounted (bullpen_exporter_events_lost_total; raise EVENTS_MAX_LEN)`,
  );
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
