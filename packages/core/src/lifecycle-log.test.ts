import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LifecycleLog, type LifecycleLinesDropped } from './lifecycle-log';
import { createLogger } from './logger';
import { captureLogs } from '../../../test/support/logs';
import { waitUntil } from '../../../test/support/wait';

/** A FIFO as the log file: opening it for writing waits for a reader, as a hung disk would. */
function stuckFile(): { file: string; release(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-lifecycle-'));
  const file = path.join(dir, 'events.jsonl');
  execFileSync('mkfifo', [file]);
  return {
    file,
    release() {
      // A reader lets the blocked open finish, so that nothing is left waiting.
      closeSync(openSync(file, constants.O_RDONLY | constants.O_NONBLOCK));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const line = () => ({ ts: new Date().toISOString(), event: 'completed' }) as never;

describe('LifecycleLog', () => {
  it('counts the lines it drops while a stuck write fills its buffer, and logs the first one once', async () => {
    const stuck = stuckFile();
    const logger = createLogger('worker', 'warn');
    const logs = captureLogs(logger);
    const drops: LifecycleLinesDropped[] = [];
    const log = new LifecycleLog({
      file: stuck.file,
      maxBytes: 1024 * 1024,
      maxFiles: 1,
      maxBufferedLines: 3,
      flushIntervalMs: 20,
      logger,
      onWriteFailed: () => undefined,
      onLinesDropped: (drop) => drops.push(drop),
    });
    try {
      for (let i = 0; i < 10; i += 1) log.write(line());
      log.start();
      // Reported although the write that took the first three lines never ends.
      await waitUntil(() => drops.length === 1, { what: 'the first report of dropped lines' });
      expect(drops).toEqual([{ lines: 7, droppedLinesTotal: 7 }]);
      for (let i = 0; i < 5; i += 1) log.write(line());
      await waitUntil(() => drops.length === 2, { what: 'the second report' });
      expect(drops[1]).toEqual({ lines: 2, droppedLinesTotal: 9 });
      expect(log.droppedLinesTotal).toBe(9);
      const full = logs.filter((l) => String(l.msg).startsWith('lifecycle event log: write buffer full'));
      expect(full).toEqual([expect.objectContaining({ level: 'warn', file: stuck.file, max_buffered_lines: 3 })]);
      await log.close(100);
    } finally {
      stuck.release();
    }
  });


  it('closes within its bound when the file cannot be written (a pipe nobody reads), dropping its last lines', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-lifecycle-'));
    const fifo = path.join(dir, 'events.jsonl');
    execFileSync('mkfifo', [fifo]);
    const logger = createLogger('worker', 'warn');
    const lines = captureLogs(logger);
    const log = new LifecycleLog({ file: fifo, maxBytes: 1024 * 1024, maxFiles: 1, logger, onWriteFailed: () => undefined, onLinesDropped: () => undefined });
    log.write({ ts: new Date().toISOString(), event: 'completed' } as never);
    try {
      // Opening a FIFO for writing waits for a reader: without the bound, close() would never end.
      await log.close(200);
      expect(lines).toContainEqual(expect.objectContaining({ level: 'warn', msg: expect.stringMatching(/could not be written in time/) }));
    } finally {
      // A reader lets the blocked open finish, so that nothing is left waiting.
      closeSync(openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK));
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
