// The logger a handler is given (ctx.logger): a child of the worker's logger whose lines always
// carry bullpen's own fields. A field of the same name that the handler logs (lane, job_id,
// attempt, trace_id, ts, …) would otherwise replace bullpen's value, and a search of the logs by
// job id would miss the line or find it under another job; the handler's value is kept under
// `handler_<name>` instead.
import type { Logger } from '@bullpen/core';

/** The attempt's own fields, set on every line; a handler's value for one goes under handler_<name>. */
export type AttemptLogFields = Readonly<Record<string, string | number>>;

/** Fields the log format fills in after the logger has passed the line on: any value a line has for
 * one of them at that point is the handler's. */
const FORMAT_FIELDS = ['ts', 'msg', 'trace_id', 'span_id'] as const;

const FIELDS: unique symbol = Symbol('bullpen.attemptLogFields');

type Line = Record<string | symbol, unknown>;
type AttemptLogger = Logger & { [FIELDS]: AttemptLogFields; defaultMeta?: { service?: unknown } | null };

/**
 * A child of `parent` that writes `fields` on every line. Made with one shared write function
 * rather than winston's child(), whose write is a fresh closure for each logger.
 */
export function handlerLogger(parent: Logger, fields: AttemptLogFields): Logger {
  // Defined, not assigned: a parent made by child() has a write of its own that is read-only.
  const logger = Object.create(parent, OWN_WRITE) as AttemptLogger;
  logger[FIELDS] = fields;
  return logger;
}

function writeWithFields(this: AttemptLogger, info: Line): void {
  const line: Line = Object.assign({}, info);
  // Object.assign copies no inherited Error properties (logger.error(err)); winston's child does the same.
  if (info instanceof Error) {
    line.stack = info.stack;
    line.message = info.message;
    line.cause = info.cause;
  }
  const service = this.defaultMeta?.service;
  if (service !== undefined && line.service !== undefined && line.service !== service) keepAsHandlers(line, 'service');
  if (service !== undefined) line.service = service;
  for (const key of FORMAT_FIELDS) if (line[key] !== undefined) keepAsHandlers(line, key);
  const fields = this[FIELDS];
  for (const key in fields) {
    const value = fields[key];
    if (line[key] !== undefined && line[key] !== value) keepAsHandlers(line, key);
    line[key] = value;
  }
  (Object.getPrototypeOf(this) as Logger).write(line);
}

const OWN_WRITE: PropertyDescriptorMap = { write: { value: writeWithFields } };

function keepAsHandlers(line: Line, key: string): void {
  line[`handler_${key}`] = line[key];
  delete line[key];
}
