// The handler API: `defineHandler({ name, payload?, run(data, ctx) })`. A handler is looked up by
// job name; its payload schema (zod) is checked before it runs, and a payload that does not fit
// fails the job permanently with a reason that names the field.
import { JOB_NAME, PermanentError, type Logger } from '@bullpen/core';
import type { JobProgress } from 'bullmq';
import type { z } from 'zod';

export interface HandlerContext {
  readonly jobId: string;
  readonly jobName: string;
  readonly lane: string;
  /** 1-based number of this attempt. */
  readonly attempt: number;
  /** The job's attempts, including the first. */
  readonly maxAttempts: number;
  /** The tenant that submitted the job; undefined for jobs added by plain BullMQ clients. */
  readonly tenant: string | undefined;
  /** Aborts when the attempt times out or the job is cancelled; stop work and throw when it does. */
  readonly signal: AbortSignal;
  /** A child logger whose lines carry lane, job_id and attempt; a field the handler logs under one
   * of bullpen's names (those, ts, msg, service, trace_id, span_id) is kept as handler_<name>. */
  readonly logger: Logger;
  /** Records progress on the job (visible to BullMQ clients) as JSON; ignored once the attempt has
   * ended. Rejects with a PermanentError (validation) for a value JSON cannot hold or has no form
   * for (a BigInt, a cycle, a function, a symbol). */
  progress(value: JobProgress): Promise<void>;
}

export interface HandlerDefinition<P, R> {
  /** The job name this handler runs; the registry key. */
  readonly name: string;
  /** Schema of the job's payload; when absent the handler receives the payload unchecked. */
  readonly payload?: z.ZodType<P>;
  run(data: P, ctx: HandlerContext): R | Promise<R>;
}

/** Marks objects made by defineHandler; a global symbol, so that a handler module loaded from a
 * different copy of this package (HANDLERS_DIR) is still recognised. */
export const HANDLER_BRAND: unique symbol = Symbol.for('bullpen.handler');

export interface Handler<P = unknown, R = unknown> extends HandlerDefinition<P, R> {
  readonly [HANDLER_BRAND]: true;
  /** Checks a raw payload; throws PermanentError (errorClass validation) naming each bad field. */
  parse(raw: unknown): P;
}

export function defineHandler<S extends z.ZodType, R>(
  definition: { name: string; payload: S; run(data: z.output<S>, ctx: HandlerContext): R | Promise<R> },
): Handler<z.output<S>, R>;
export function defineHandler<R>(definition: { name: string; run(data: unknown, ctx: HandlerContext): R | Promise<R> }): Handler<unknown, R>;
export function defineHandler<P, R>(definition: HandlerDefinition<P, R>): Handler<P, R> {
  if (typeof definition?.name !== 'string' || !JOB_NAME.test(definition.name)) {
    throw new TypeError(`defineHandler: name must match ${JOB_NAME}, got ${JSON.stringify(definition?.name)}`);
  }
  if (typeof definition.run !== 'function') throw new TypeError(`defineHandler(${definition.name}): run must be a function`);
  const { name, payload } = definition;
  return Object.freeze({
    ...definition,
    [HANDLER_BRAND]: true as const,
    parse(raw: unknown): P {
      if (!payload) return raw as P;
      const result = payload.safeParse(raw);
      if (result.success) return result.data;
      throw new PermanentError(`invalid payload for job "${name}": ${formatPayloadIssues(result.error)}`, 'validation');
    },
  });
}

export function isHandler(value: unknown): value is Handler {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[HANDLER_BRAND] === true;
}

function formatPayloadIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => {
      const field = issue.path.length > 0 ? `field "${issue.path.join('.')}"` : 'payload';
      return `${field}: ${issue.message}`;
    })
    .join('; ');
}
