// Structured logs: one JSON object per line with ts, level, service and msg, plus trace_id and
// span_id of the active span when tracing is on. Field names are snake_case (lane, job_id,
// attempt) so that logs, lifecycle events and traces can be grepped with the same ids.
import { trace } from '@opentelemetry/api';
import winston from 'winston';
import type { LogLevel } from './config';

export type Logger = winston.Logger;

const withTraceIds = winston.format((info) => {
  const span = trace.getActiveSpan();
  if (span) {
    const ctx = span.spanContext();
    if (ctx.traceFlags & 1) {
      info.trace_id ??= ctx.traceId;
      info.span_id ??= ctx.spanId;
    }
  }
  return info;
});

export function createLogger(service: string, level: LogLevel = 'info'): Logger {
  return winston.createLogger({
    level,
    defaultMeta: { service },
    format: winston.format.combine(
      winston.format.timestamp({ alias: 'ts' }),
      withTraceIds(),
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

/** Levels redact() walks; job data may nest 64 (the API's bound), so all of it is covered. */
const MAX_REDACT_DEPTH = 64;

/** A copy of `value` with the values of `keys` (at any depth, case-insensitive) replaced. */
export function redact(value: unknown, keys: ReadonlySet<string>, depth = 0): unknown {
  if (value === null || typeof value !== 'object') return value;
  // Deeper than this is not walked, so it is not shown either: a key it holds could not be redacted.
  if (depth > MAX_REDACT_DEPTH) return '[too deep to redact]';
  if (Array.isArray(value)) return value.map((v) => redact(v, keys, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    out[k] = keys.has(k.toLowerCase()) ? '[redacted]' : redact(v, keys, depth + 1);
  }
  return out;
}
