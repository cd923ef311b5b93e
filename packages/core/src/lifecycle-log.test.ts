import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LifecycleLog } from './lifecycle-log';
import { createLogger } from './logger';
import { captureLogs } from '../../../test/support/logs';

describe('LifecycleLog', () => {
  it('closes within its bound when the file cannot be written (a pipe nobody reads), dropping its last lines', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-lifecycle-'));
    const fifo = path.join(dir, 'events.jsonl');
    execFileSync('mkfifo', [fifo]);
    const logger = createLogger('worker', 'warn');
    const lines = captureLogs(logger);
    const log = new LifecycleLog({ file: fifo, maxBytes: 1024 * 1024, maxFiles: 1, logger, onWriteFailed: () => undefined });
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
