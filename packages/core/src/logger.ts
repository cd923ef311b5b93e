// Structured logs: one JSON object per line with ts, level, service and msg, plus trace_id and
// span_id of the active span when tracing is on. Field names are snake_case (lane, job_id,
// attempt) so that logs, lifecycle events and traces can be grepped with the same ids.
import { trace } from '@opentelemetry/api';
import winston from 'winston';
import type { LogLevel } from './config';
import { redactUrlsInText } from './url-redaction';

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

/** A key as redaction compares it: lower case, letters and digits only (`API-Key` → `apikey`). */
export function redactionForm(key: string): string {
  return key.toLowerCase().replace(/[^a-z0-9]/g, '');
}

/**
 * A copy of `value` where the value of every key (at any depth) that contains one of `keys` is
 * replaced. Keys compare in redactionForm, so `token` covers `access_token`, `refreshToken` and
 * `X-Token`, and `apikey` covers `api-key` and `x_api_key`: secrets are named in many ways, and a
 * key missed shows a secret in clear, while a key redacted that need not be costs little.
 * URLs inside string values lose their userinfo, and the values of query parameters that hold a
 * secret (url-redaction.ts), to REDACTED.
 */
export function redact(value: unknown, keys: ReadonlySet<string>, depth = 0): unknown {
  return redactWith(value, [...keys].map(redactionForm).filter(Boolean), depth);
}

function redactWith(value: unknown, keys: readonly string[], depth: number): unknown {
  // A URL in a string value may carry a password (http://user:pass@host) or a token in its query.
  if (typeof value === 'string') return redactUrlsInText(value, keys);
  if (value === null || typeof value !== 'object') return value;
  // Deeper than this is not walked, so it is not shown either: a key it holds could not be redacted.
  if (depth > MAX_REDACT_DEPTH) return '[too deep to redact]';
  if (Array.isArray(value)) return value.map((v) => redactWith(v, keys, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const form = redactionForm(k);
    out[k] = keys.some((key) => form.includes(key)) ? '[redacted]' : redactWith(v, keys, depth + 1);
  }
  return out;
}
