// The entry point of a handler thread of an isolated lane. It builds the same handler registry as
// the worker process (built-ins plus HANDLERS_DIR), reports that it is ready, then runs one handler
// call at a time as the pool asks: the payload arrives as the job stores it and is parsed here with
// the handler's schema (the main thread checked it already, but what its transforms make, a Buffer
// or a URL, would not survive the trip), the AbortSignal is driven by `abort` messages, progress is
// forwarded, and the result or error is sent back. The pool terminates the thread when
// a handler ignores its aborted signal for too long. With tracing on, the thread runs its own
// OpenTelemetry SDK under the worker's settings, and each call runs in the context of the attempt
// span it was sent, so the handler's spans (the http handler's outbound call) are that span's
// children and its traceparent goes downstream.
import { format } from 'node:util';
import { parentPort, threadId, workerData } from 'node:worker_threads';
import { ROOT_CONTEXT, context as otelContext } from '@opentelemetry/api';
import { PermanentError, createLogger, extractTraceContext, startTracing } from '@bullpen/core';
import { buildRegistry } from '../default-registry';
import type { HandlerContext } from '../handler';
import { handlerLogger } from '../handler-logger';
import type { HandlerRegistry } from '../registry';
import { storedProgress, storedResult } from '../stored-json';
import { deserializeError, serializeError, type FromThread, type ThreadData, type ToThread } from './protocol';

const port = parentPort;
if (!port) throw new Error('thread-main must run in a worker thread');
const data = workerData as ThreadData;
const post = (message: FromThread) => port.postMessage(message);
/** The last call that started here: what the thread prints, or an error no call caught, most likely comes from it. */
let lastCall: { jobId: string; handler: string; attempt: number } | undefined;

// A thread's console writes to the process's stderr directly, past the JSON logger the worker
// routes its console through (captureConsole): what a handler prints is sent to the pool instead,
// which logs it as the worker logs its own console output. Installed before the handlers load, so
// that what they print then is sent too.
const forward = (level: 'warn' | 'error') => (...args: unknown[]) => {
  post({ type: 'console', level, message: format(...args), jobId: lastCall?.jobId, handler: lastCall?.handler, attempt: lastCall?.attempt });
};
console.warn = forward('warn');
console.error = forward('error');

let registry: HandlerRegistry | undefined;
try {
  registry = buildRegistry(data.handlersDir, data.httpAllowedHosts);
} catch (err) {
  post({ type: 'fatal', error: serializeError(err) });
}
const logger = createLogger('worker', data.logLevel).child({ thread: threadId });
const tracing = startTracing(data.tracing, data.serviceName, logger);
const running = new Map<number, AbortController>();

// Node would end the thread on such an error, failing whatever call runs in it then, most often
// the next job's. It is reported instead, and the pool retires this thread once its call is done.
const stray = (err: unknown) => post({ type: 'stray', error: serializeError(err), jobId: lastCall?.jobId, handler: lastCall?.handler });
process.on('uncaughtException', stray);
process.on('unhandledRejection', stray);

/** Exports what the SDK still holds, then lets the thread end. */
async function shutdown(): Promise<void> {
  try {
    await tracing.shutdown();
  } catch (err) {
    logger.warn('could not export the last spans of a handler thread', { error: (err as Error).message });
  }
  port?.close();
}

port.on('message', (message: ToThread) => {
  if (message.type === 'shutdown') {
    void shutdown();
    return;
  }
  if (message.type === 'abort') {
    running.get(message.taskId)?.abort(deserializeError(message.reason));
    return;
  }
  if (!registry) return; // 'fatal' was sent; the pool stops this thread
  const { taskId, name, payload, ctx, trace } = message;
  lastCall = { jobId: ctx.jobId, handler: name, attempt: ctx.attempt };
  const handler = registry.get(name);
  if (!handler) {
    const err = new PermanentError(`no handler named "${name}" in isolated threads (built-ins and HANDLERS_DIR)`, 'unknown_handler');
    post({ type: 'done', taskId, ok: false, error: serializeError(err) });
    return;
  }
  const controller = new AbortController();
  running.set(taskId, controller);
  const context: HandlerContext = {
    ...ctx,
    signal: controller.signal,
    logger: handlerLogger(logger, { thread: threadId, lane: ctx.lane, job_id: ctx.jobId, attempt: ctx.attempt }),
    // Sent as it will be stored (JSON), so that a value an ordinary lane refuses is refused here, as
    // a rejection of this call, and one it stores (a Buffer, an object with a method) can be sent.
    progress: (value) => {
      try {
        post({ type: 'progress', taskId, value: storedProgress(name, value) });
      } catch (err) {
        return Promise.reject(err);
      }
      return Promise.resolve();
    },
  };
  const parent = tracing.enabled ? extractTraceContext(trace, ROOT_CONTEXT) : ROOT_CONTEXT;
  Promise.resolve()
    .then(() => otelContext.with(parent, () => handler.run(handler.parse(payload), context)))
    .then(
      (value: unknown) => {
        // What an ordinary lane stores for it, made here: JSON data always leaves the thread, and a
        // value JSON cannot hold fails as it would in process.
        let stored: unknown;
        try {
          stored = storedResult(name, value);
        } catch (err) {
          post({ type: 'done', taskId, ok: false, error: serializeError(err) });
          return;
        }
        post({ type: 'done', taskId, ok: true, value: stored });
      },
      (err: unknown) => post({ type: 'done', taskId, ok: false, error: serializeError(err) }),
    )
    .finally(() => running.delete(taskId));
});
// The pool hands this thread a call only from now on: the time it took to get here (loading
// bullpen, the handlers and the tracing SDK, seconds on a busy machine) is not any handler's.
if (registry) post({ type: 'ready' });
