// Reading lifecycle event logs (EVENT_LOG_FILE) in tests: their lines, and the files a rotated log
// leaves behind.
import { existsSync, readFileSync, statSync } from 'node:fs';

/** The envelope every lifecycle line opens with, in this order. */
export const ENVELOPE = ['ts', 'event', 'lane', 'job_id', 'job_name', 'tenant', 'attempt', 'worker_id'];

export type LogLine = Record<string, unknown>;

/** The lines of a log (none when it does not exist); a line cut short by a killed writer is left out. */
export function readLogLines(file: string): LogLine[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as LogLine];
      } catch {
        return [];
      }
    });
}

/**
 * Expects `file` rotated at `maxBytes` keeping `maxFiles` rotated files (`file.1` … `file.N`, no
 * more), each non-empty and within the size, every line in the envelope; returns their lines.
 */
export function expectRotatedLog(file: string, maxBytes: number, maxFiles: number): LogLine[] {
  const kept = [file, ...Array.from({ length: maxFiles }, (_, i) => `${file}.${i + 1}`)];
  for (const f of kept) expect(existsSync(f)).toBe(true);
  expect(existsSync(`${file}.${maxFiles + 1}`)).toBe(false);
  for (const f of kept) {
    expect(statSync(f).size).toBeGreaterThan(0);
    expect(statSync(f).size).toBeLessThanOrEqual(maxBytes);
  }
  const lines = kept.flatMap(readLogLines);
  for (const line of lines) expect(Object.keys(line).slice(0, ENVELOPE.length)).toEqual(ENVELOPE);
  return lines;
}
