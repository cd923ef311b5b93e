import { captureLogs } from '../../../test/support/logs';
import { captureConsole } from './console-capture';
import { createLogger, type Logger } from './logger';

describe('captureConsole', () => {
  function collectingLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
    const logger = createLogger('worker', 'debug');
    return { logger, lines: captureLogs(logger) };
  }

  it('writes every distinct message as a log line at its level, and counts a repeated one', () => {
    const { logger, lines } = collectingLogger();
    const restore = captureConsole(logger);
    try {
      // More distinct messages than the repeat limiter tracks: none of them may be dropped.
      for (let i = 0; i < 120; i += 1) console.error('job %d failed', i);
      for (let i = 0; i < 5; i += 1) console.warn('IMPORTANT! Eviction policy is allkeys-lru');
    } finally {
      restore();
    }
    const failed = lines.filter((l) => String(l.msg).startsWith('job '));
    expect(failed).toHaveLength(120);
    expect(failed[119]).toMatchObject({ level: 'error', msg: 'job 119 failed', source: 'console' });
    expect(lines.filter((l) => l.msg === 'IMPORTANT! Eviction policy is allkeys-lru')).toEqual([
      expect.objectContaining({ level: 'warn', source: 'console' }),
    ]);
    expect(lines).toContainEqual(
      expect.objectContaining({ msg: 'console output repeated', output: 'IMPORTANT! Eviction policy is allkeys-lru', repeats: 4 }),
    );
  });

  it('gives console.warn and console.error back as they were', () => {
    const { warn, error } = console;
    const restore = captureConsole(collectingLogger().logger);
    expect(console.warn).not.toBe(warn);
    restore();
    expect([console.warn, console.error]).toEqual([warn, error]);
  });
});
