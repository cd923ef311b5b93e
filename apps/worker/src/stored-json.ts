// What bullpen stores of a handler's result: its JSON text, as BullMQ writes it to Redis. Checked
// where the handler runs, in process or in an isolated lane's thread before the value leaves it, so
// that both kinds of lane store the same thing (a function or a symbol dropped, a Buffer as
// {"type":"Buffer","data":[...]}) and refuse the same values (a BigInt, a cycle) with the same error.
import { PermanentError, describeThrown } from '@bullpen/core';

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
