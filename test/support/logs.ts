// A logger's lines kept for the test to read, instead of written to the console.
import { Writable } from 'node:stream';
import winston from 'winston';
import type { Logger } from '@bullpen/core';

/** Sends `logger`'s lines, parsed, to the returned array from now on. */
export function captureLogs(logger: Logger): Array<Record<string, unknown>> {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  logger.clear().add(new winston.transports.Stream({ stream }));
  return lines;
}
