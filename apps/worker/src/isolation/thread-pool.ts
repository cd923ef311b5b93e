// The handler threads of one isolated lane: `size` (the lane's concurrency) threads, started with
// the lane and reused; each runs one handler call at a time. A thread takes calls only once it has
// reported that it is ready: starting one takes seconds on a busy machine, and that time is no
// handler's, so a caller takes a ready thread (acquire) before its handler's clock starts. A call
// whose handler must be stopped is ended with worker.terminate(), which really stops it (even a
// loop that never yields), and its thread is replaced at once by a fresh one, which starts in the
// background. A thread that is not ready within the start-up bound is terminated.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { ConsoleRouter, type Logger } from '@bullpen/core';
import type { JobProgress } from 'bullmq';
import { deserializeError, serializeError, type FromThread, type ThreadData, type ThreadTaskContext, type ToThread } from './protocol';
import { ThreadStartError } from './thread-start-error';

/** How long close() lets an idle thread flush its spans before terminating it. */
export const SHUTDOWN_GRACE_MS = 2000;

export interface ThreadTask {
  name: string;
  /** The job's payload as stored, checked in the main thread already; passed by structured clone and
   * parsed again in the thread, because what a schema's transforms make (a Buffer, a URL, a class
   * instance) does not survive a structured clone. */
  payload: unknown;
  ctx: ThreadTaskContext;
  /** The attempt span's W3C trace context, when there is one to continue. */
  trace?: Record<string, string>;
}

/** A ready thread taken for one handler call: run() it, or release() it unused. */
export interface ThreadLease {
  /** Starts the call on the thread at once; `signal` aborting is forwarded to the handler's own signal. */
  run(task: ThreadTask, signal: AbortSignal, onProgress: (value: JobProgress) => void): IsolatedRun;
  /** Gives the thread back without a call; nothing once run() was called. */
  release(): void;
}

/** One handler call in a thread. */
export interface IsolatedRun {
  /** Settles with the handler's result or error. */
  result: Promise<unknown>;
  /** Stops the call by terminating its thread; resolves once the thread has exited. */
  terminate(): Promise<void>;
}

export interface ThreadPoolStats {
  /** Threads alive now (starting, busy or idle). */
  alive: number;
  /** Threads alive but not ready yet. */
  starting: number;
  busy: number;
  startedTotal: number;
  /** Threads terminated because their handler had to be stopped. */
  terminatedTotal: number;
}

interface Call {
  taskId: number;
  resolve(value: unknown): void;
  reject(err: unknown): void;
  onProgress(value: JobProgress): void;
}

interface PoolThread {
  worker: Worker;
  /** It reported that it loaded its handlers: it takes calls. */
  ready: boolean;
  /** Why it will never be ready (its handlers failed to load, or it took too long). */
  startFailure?: ThreadStartError;
  startTimer?: NodeJS.Timeout;
  call: Call | undefined;
  exited: Promise<void>;
  /** An error no call caught happened in it: replaced once its call (if any) is done. */
  retiring?: boolean;
}

interface Waiter {
  grant(thread: PoolThread): void;
  fail(err: unknown): void;
}

export interface ThreadPoolOptions {
  lane: string;
  /** Most threads alive at once; the lane's concurrency. */
  size: number;
  data: ThreadData;
  logger: Logger;
  /** How long a thread may take to become ready before it is terminated; the lane's threadStartTimeoutMs. */
  startTimeoutMs: number;
  /** The thread entry script; default the built thread-main.js. */
  script?: string;
}

/**
 * A call the pool ended because it closed (the worker is shutting down): the handler did not
 * fail, its thread was taken from it. The attempt hands its job back rather than recording a failure.
 */
export class ThreadPoolClosedError extends Error {
  override readonly name = 'ThreadPoolClosedError';
  readonly code = 'thread_pool_closed';
}

export class ThreadPool {
  private readonly threads = new Set<PoolThread>();
  private readonly idle: PoolThread[] = [];
  private readonly waiters: Waiter[] = [];
  private nextTaskId = 1;
  private started = 0;
  private terminated = 0;
  private closed = false;
  /** Logs what the threads' handlers print, as the worker logs its own console output. */
  private readonly console: ConsoleRouter;

  constructor(private readonly options: ThreadPoolOptions) {
    this.console = new ConsoleRouter(options.logger);
  }

  /** Starts the lane's threads, so that they are likely ready when its first jobs come; it does not wait for them. */
  start(): void {
    while (!this.closed && this.threads.size < this.options.size) this.spawn();
  }

  stats(): ThreadPoolStats {
    let busy = 0;
    let starting = 0;
    for (const thread of this.threads) {
      if (thread.call) busy += 1;
      if (!thread.ready) starting += 1;
    }
    return { alive: this.threads.size, starting, busy, startedTotal: this.started, terminatedTotal: this.terminated };
  }

  /** A ready idle thread at once, or undefined when none is. */
  tryAcquire(): ThreadLease | undefined {
    if (this.closed || this.waiters.length > 0) return undefined;
    const idle = this.idle.pop();
    return idle ? this.lease(idle) : undefined;
  }

  /**
   * Resolves with a ready thread, once there is one: a thread still starting is waited for, and a
   * missing one started. Rejects with the ThreadStartError of a thread that could not start in its
   * stead, a ThreadPoolClosedError, or `signal`'s reason if it aborts first.
   */
  acquire(signal?: AbortSignal): Promise<ThreadLease> {
    if (this.closed) return Promise.reject(this.closedError());
    if (signal?.aborted) return Promise.reject(signal.reason);
    const now = this.tryAcquire();
    if (now) return Promise.resolve(now);
    return new Promise<ThreadLease>((resolve, reject) => {
      const onAbort = () => {
        const index = this.waiters.indexOf(waiter);
        if (index >= 0) this.waiters.splice(index, 1);
        reject(signal?.reason);
      };
      const waiter: Waiter = {
        grant: (thread) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(this.lease(thread));
        },
        fail: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      this.waiters.push(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
      this.startForWaiters();
    });
  }

  /**
   * Stops every thread. Calls still running or waiting for a thread fail with a
   * ThreadPoolClosedError, before their thread is terminated, so that they are not taken for the
   * handler's own failure. An idle thread is asked to exit, so that it first exports the spans it
   * holds; a busy one, one still starting, or one that does not exit within `graceMs`, is terminated.
   */
  async close(graceMs = SHUTDOWN_GRACE_MS): Promise<void> {
    this.closed = true;
    for (const waiter of this.waiters.splice(0)) waiter.fail(this.closedError());
    await Promise.all(
      [...this.threads].map(async (thread) => {
        if (thread.call) {
          thread.call.reject(this.closedError());
        } else if (thread.ready) {
          this.send(thread, { type: 'shutdown' });
          let timer: NodeJS.Timeout | undefined;
          const late = new Promise<'late'>((resolve) => (timer = setTimeout(resolve, graceMs, 'late')));
          const outcome = await Promise.race([thread.exited, late]);
          clearTimeout(timer);
          if (outcome !== 'late') return;
        }
        await thread.worker.terminate();
        await thread.exited;
      }),
    );
    this.console.close();
  }

  private lease(thread: PoolThread): ThreadLease {
    let used = false;
    return {
      run: (task, signal, onProgress) => {
        if (used) throw new Error('a thread lease runs one call');
        used = true;
        return this.runOn(thread, task, signal, onProgress);
      },
      release: () => {
        if (used) return;
        used = true;
        this.release(thread);
      },
    };
  }

  private runOn(thread: PoolThread, task: ThreadTask, signal: AbortSignal, onProgress: (value: JobProgress) => void): IsolatedRun {
    const taskId = this.nextTaskId++;
    const result = new Promise<unknown>((resolve, reject) => {
      if (this.closed) {
        this.release(thread);
        reject(this.closedError());
        return;
      }
      if (!this.threads.has(thread)) {
        reject(new Error('isolated handler thread exited before its call started'));
        return;
      }
      thread.call = { taskId, resolve, reject, onProgress };
      const onAbort = () => this.send(thread, { type: 'abort', taskId, reason: serializeError(signal.reason) });
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      this.send(thread, { type: 'run', taskId, name: task.name, payload: task.payload, ctx: task.ctx, ...(task.trace ? { trace: task.trace } : {}) });
    });
    return {
      result,
      terminate: async () => {
        if (thread.call?.taskId !== taskId) return;
        await this.terminateThread(thread);
      },
    };
  }

  private closedError(): ThreadPoolClosedError {
    return new ThreadPoolClosedError(`lane ${this.options.lane}: thread pool closed (the worker is shutting down)`);
  }

  private release(thread: PoolThread): void {
    thread.call = undefined;
    if (!this.threads.has(thread) || this.closed) return;
    if (thread.retiring) {
      // Its exit starts its successor, which the next waiter gets once it is ready.
      void thread.worker.terminate();
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter) waiter.grant(thread);
    else this.idle.push(thread);
  }

  /**
   * Starts threads for the callers waiting that no thread starting now will serve (the pool's
   * threads were never started, or some could not start), as far as the pool's size allows.
   */
  private startForWaiters(): void {
    let starting = 0;
    for (const thread of this.threads) if (!thread.ready && !thread.startFailure) starting += 1;
    let missing = this.waiters.length - starting;
    while (missing > 0 && !this.closed && this.threads.size < this.options.size) {
      this.spawn();
      missing -= 1;
    }
  }

  private spawn(): PoolThread {
    const { lane, logger, startTimeoutMs } = this.options;
    const worker = new Worker(this.options.script ?? threadScriptPath(), { workerData: this.options.data });
    // Idle threads must not keep the process alive; the runtime closes the pool on shutdown.
    worker.unref();
    this.started += 1;
    let markExited!: () => void;
    const exited = new Promise<void>((resolve) => (markExited = resolve));
    const thread: PoolThread = { worker, ready: false, call: undefined, exited };
    thread.startTimer = setTimeout(() => {
      thread.startFailure = new ThreadStartError(
        `lane ${lane}: a handler thread was not ready ${startTimeoutMs} ms after it started (loading its handlers took longer than the lane's threadStartTimeoutMs, or hung); it was terminated`,
        'thread_start_timeout',
      );
      logger.error('isolated handler thread did not become ready in time; it is terminated', { lane, thread_start_timeout_ms: startTimeoutMs });
      void worker.terminate();
    }, startTimeoutMs);
    thread.startTimer.unref();
    this.threads.add(thread);
    worker.on('message', (message: FromThread) => this.onMessage(thread, message));
    worker.on('error', (err) => {
      if (!thread.ready) {
        thread.startFailure ??= new ThreadStartError(`lane ${lane}: a handler thread failed while starting: ${err.message}`, 'thread_start_failed', { cause: err });
        logger.error('isolated handler thread failed while starting', { lane, error: err.message });
        return;
      }
      // An error the handler did not catch (say, thrown from a timer): the thread is going down.
      logger.warn('isolated handler thread crashed', { lane, error: err.message });
      thread.call?.reject(err);
    });
    worker.on('exit', (code) => {
      markExited();
      clearTimeout(thread.startTimer);
      const call = thread.call;
      thread.call = undefined;
      this.threads.delete(thread);
      const index = this.idle.indexOf(thread);
      if (index >= 0) this.idle.splice(index, 1);
      call?.reject(new Error(`isolated handler thread exited with code ${code}`));
      if (this.closed) return;
      if (thread.ready) {
        // It had served calls (its handler was terminated, or it crashed): its successor starts now,
        // in the background, rather than on the next call's time.
        if (this.threads.size < this.options.size) this.spawn();
        return;
      }
      // A start that failed fails the call that has waited longest, in whose stead it started; it is
      // not started again for nobody, so that handlers that cannot load do not restart in a loop.
      this.waiters.shift()?.fail(
        thread.startFailure ?? new ThreadStartError(`lane ${lane}: a handler thread exited with code ${code} before it was ready`, 'thread_start_failed'),
      );
      this.startForWaiters();
    });
    return thread;
  }

  private onMessage(thread: PoolThread, message: FromThread): void {
    if (message.type === 'ready') {
      if (thread.startFailure) return; // too late: it is being terminated
      clearTimeout(thread.startTimer);
      thread.ready = true;
      this.release(thread);
      return;
    }
    if (message.type === 'fatal') {
      const err = deserializeError(message.error);
      this.options.logger.error('isolated handler thread could not load its handlers', { lane: this.options.lane, error: err.message });
      thread.startFailure = new ThreadStartError(`lane ${this.options.lane}: a handler thread could not load its handlers: ${err.message}`, 'thread_start_failed', {
        cause: err,
      });
      void thread.worker.terminate();
      return;
    }
    if (message.type === 'console') {
      this.console.route(message.level, message.message, {
        lane: this.options.lane,
        thread: thread.worker.threadId,
        ...(message.jobId !== undefined ? { job_id: message.jobId, handler: message.handler, attempt: message.attempt } : {}),
      });
      return;
    }
    if (message.type === 'stray') {
      // The call running now (if any) is not its source: it goes on, and the thread goes after it.
      this.options.logger.warn('an isolated handler left an error no call caught; its thread is replaced', {
        lane: this.options.lane,
        job_id: message.jobId ?? null,
        handler: message.handler ?? null,
        error: deserializeError(message.error).message,
      });
      thread.retiring = true;
      const index = this.idle.indexOf(thread);
      if (index >= 0) {
        this.idle.splice(index, 1);
        void thread.worker.terminate();
      }
      return;
    }
    const call = thread.call;
    if (!call || call.taskId !== message.taskId) return;
    if (message.type === 'progress') {
      call.onProgress(message.value);
      return;
    }
    if (message.ok) call.resolve(message.value);
    else call.reject(deserializeError(message.error));
    this.release(thread);
  }

  private send(thread: PoolThread, message: ToThread): void {
    try {
      thread.worker.postMessage(message);
    } catch (err) {
      // A payload that cannot be cloned fails this call, not the thread.
      const call = thread.call;
      if (call && 'taskId' in message && call.taskId === message.taskId) {
        call.reject(err);
        this.release(thread);
      }
    }
  }

  private async terminateThread(thread: PoolThread): Promise<void> {
    if (!this.threads.has(thread)) return thread.exited;
    this.terminated += 1;
    // Out of the idle list and the live set's reuse for good; 'exit' removes it from the set.
    await thread.worker.terminate();
    await thread.exited;
  }
}

/** The built thread entry. Run from TypeScript sources (tests), threads use the build in dist/. */
export function threadScriptPath(): string {
  const beside = path.join(__dirname, 'thread-main.js');
  if (existsSync(beside)) return beside;
  const built = path.resolve(__dirname, '../../dist/isolation/thread-main.js');
  if (existsSync(built)) return built;
  throw new Error(`isolated lanes need the built handler thread script ${built}: build the worker (npx tsc -b apps/worker)`);
}
