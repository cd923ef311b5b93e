// Structured logs: one JSON object per line with ts, level, service and msg.
import winston from 'winston';
import type { LogLevel } from './config';

export type Logger = winston.Logger;

export function createLogger(service: string, level: LogLevel = 'info'): Logger {
  return winston.createLogger({
    level,
    defaultMeta: { service },
    format: winston.format.combine(
      winston.format.timestamp({ alias: 'ts' }),
      winston.format((info) => {
        delete info.timestamp;
        if (info.message !== undefined && info.msg === undefined) {
          info.msg = info.message;
        }
        return info;
      })(),
      winston.format.json({ replacer: (key, value) => (key === 'message' ? undefined : value) }),
    ),
    transports: [new winston.transports.Console({ stderrLevels: [] })],
  });
}
