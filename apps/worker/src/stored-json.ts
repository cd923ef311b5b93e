// What bullpen stores of a handler's result and of the progress it reports: their JSON text, as
// BullMQ writes them to Redis. Checked where the handler runs, in process or in an isolated lane's
// thread before the value leaves it, so that both kinds of lane store the same thing (a function or
// a symbol dropped, a Buffer as {"type":"Buffer","data":[...]}) and refuse the same values (a
// BigInt, a cycle) with the same error.
import { PermanentError, describeThrown } from '@bullpen/core';
import type { JobProgress } from 'bullmq';

/**
 * The JSON text of a handler's result; undefined when JSON has none for it (undefined, a function,
 * a symbol). A result JSON cannot hold would fail in BullMQ once the processor has returned,
 * outside the attempt, and BullMQ would run the handler again at once: it fails the attempt for
 * good instead (PermanentError, validation), recorded like any other failure.
 */
export function resultJson(handlerName: string, result: unknown): string | undefined {
  try {
    return JSON.stringify(result);
  } catch (err) {
    throw new PermanentError(`handler "${handlerName}" returned a value that cannot be stored as JSON: ${describeThrown(err)}`, 'validation');
  }
}

/** A handler's result as it is stored: the JSON form resultJson gives, as plain data. */
export function storedResult(handlerName: string, result: unknown): unknown {
  const text = resultJson(handlerName, result);
  return text === undefined ? undefined : (JSON.parse(text) as unknown);
}

/**
 * A reported progress value as it is stored: its JSON form, as plain data. A value JSON cannot hold
 * (a BigInt, a cycle) or has no JSON form for (a function, a symbol) is refused with a
 * PermanentError (validation), which ctx.progress() rejects with: retrying would not change it.
 */
export function storedProgress(handlerName: string, value: unknown): JobProgress {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    throw new PermanentError(`handler "${handlerName}" reported progress that cannot be stored as JSON: ${describeThrown(err)}`, 'validation');
  }
  if (text === undefined) {
    throw new PermanentError(`handler "${handlerName}" reported progress JSON has no form for (a ${typeof value}): report a number, a string, a boolean or an object`, 'validation');
  }
  return JSON.parse(text) as JobProgress;
}
