import { Writable } from 'node:stream';
import winston from 'winston';
import { captureConsole } from './console-capture';

describe('captureConsole', () => {
  function collectingLogger(): { logger: winston.Logger; lines: Array<Record<string, unknown>> } {
    const lines: Array<Record<string, unknown>> = [];
    const stream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    const logger = winston.createLogger({ level: 'debug', format: winston.format.json(), transports: [new winston.transports.Stream({ stream })] });
    return { logger, lines };
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
    const failed = lines.filter((l) => String(l.message).startsWith('job '));
    expect(failed).toHaveLength(120);
    expect(failed[119]).toMatchObject({ level: 'error', message: 'job 119 failed', source: 'console' });
    expect(lines.filter((l) => l.message === 'IMPORTANT! Eviction policy is allkeys-lru')).toEqual([
      expect.objectContaining({ level: 'warn', source: 'console' }),
    ]);
    expect(lines).toContainEqual(
      expect.objectContaining({ message: 'console output repeated', output: 'IMPORTANT! Eviction policy is allkeys-lru', repeats: 4 }),
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
