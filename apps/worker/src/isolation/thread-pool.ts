// The handler threads of one isolated lane: at most `size` (the lane's concurrency) threads,
// started when first needed and reused; each runs one handler call at a time. A call whose handler
// must be stopped is ended with worker.terminate(), which really stops it (even a loop that never
// yields), and its thread is replaced by a fresh one for the next call.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Logger } from '@bullpen/core';
import type { JobProgress } from 'bullmq';
import { deserializeError, serializeError, type FromThread, type ThreadData, type ThreadTaskContext, type ToThread } from './protocol';

/** How long close() lets an idle thread flush its spans before terminating it. */
export const SHUTDOWN_GRACE_MS = 2000;

export interface ThreadTask {
  name: string;
  /** The validated payload; passed by structured clone. */
  payload: unknown;
  ctx: ThreadTaskContext;
  /** The attempt span's W3C trace context, when there is one to continue. */
  trace?: Record<string, string>;
}

/** One handler call in a thread. */
export interface IsolatedRun {
  /** Settles with the handler's result or error. */
  result: Promise<unknown>;
  /** Stops the call by terminating its thread; resolves once the thread has exited. */
  terminate(): Promise<void>;
}

export interface ThreadPoolStats {
  /** Threads alive now (busy or idle). */
  alive: number;
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
  call: Call | undefined;
  exited: Promise<void>;
  /** An error no call caught happened in it: replaced once its call (if any) is done. */
  retiring?: boolean;
}

export interface ThreadPoolOptions {
  lane: string;
  /** Most threads alive at once; the lane's concurrency. */
  size: number;
  data: ThreadData;
  logger: Logger;
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
  private readonly waiters: Array<{ grant(thread: PoolThread): void; fail(err: unknown): void }> = [];
  private nextTaskId = 1;
  private started = 0;
  private terminated = 0;
  private closed = false;

  constructor(private readonly options: ThreadPoolOptions) {}

  stats(): ThreadPoolStats {
    let busy = 0;
    for (const thread of this.threads) if (thread.call) busy += 1;
    return { alive: this.threads.size, busy, startedTotal: this.started, terminatedTotal: this.terminated };
  }

  /** Runs one handler call in a thread; `signal` aborting is forwarded to the handler's own signal. */
  run(task: ThreadTask, signal: AbortSignal, onProgress: (value: JobProgress) => void): IsolatedRun {
    const taskId = this.nextTaskId++;
    let thread: PoolThread | undefined;
    let stopped = false;
    const result = this.acquire().then(
      (acquired) =>
        new Promise<unknown>((resolve, reject) => {
          if (stopped || this.closed) {
            this.release(acquired);
            reject(this.closed ? this.closedError() : new Error('isolated handler call stopped before it started'));
            return;
          }
          thread = acquired;
          acquired.call = { taskId, resolve, reject, onProgress };
          const onAbort = () => this.send(acquired, { type: 'abort', taskId, reason: serializeError(signal.reason) });
          if (signal.aborted) onAbort();
          else signal.addEventListener('abort', onAbort, { once: true });
          this.send(acquired, { type: 'run', taskId, name: task.name, payload: task.payload, ctx: task.ctx, ...(task.trace ? { trace: task.trace } : {}) });
        }),
    );
    return {
      result,
      terminate: async () => {
        stopped = true;
        if (!thread || thread.call?.taskId !== taskId) return;
        await this.terminateThread(thread);
      },
    };
  }

  /**
   * Stops every thread. Calls still running or waiting for a thread fail with a
   * ThreadPoolClosedError, before their thread is terminated, so that they are not taken for the
   * handler's own failure. An idle thread is asked to exit, so that it first exports the spans it
   * holds; a busy one, or one that does not exit within `graceMs`, is terminated.
   */
  async close(graceMs = SHUTDOWN_GRACE_MS): Promise<void> {
    this.closed = true;
    for (const waiter of this.waiters.splice(0)) waiter.fail(this.closedError());
    await Promise.all(
      [...this.threads].map(async (thread) => {
        if (thread.call) {
          thread.call.reject(this.closedError());
        } else {
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
  }

  private acquire(): Promise<PoolThread> {
    if (this.closed) return Promise.reject(this.closedError());
    const idle = this.idle.pop();
    if (idle) return Promise.resolve(idle);
    if (this.threads.size < this.options.size) return Promise.resolve(this.spawn());
    return new Promise((grant, fail) => this.waiters.push({ grant, fail }));
  }

  private closedError(): ThreadPoolClosedError {
    return new ThreadPoolClosedError(`lane ${this.options.lane}: thread pool closed (the worker is shutting down)`);
  }

  private release(thread: PoolThread): void {
    thread.call = undefined;
    if (!this.threads.has(thread)) return;
    if (thread.retiring) {
      // Its exit lets the next waiter have a fresh thread (replace()).
      void thread.worker.terminate();
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter) waiter.grant(thread);
    else this.idle.push(thread);
  }

  /** A thread left the pool (terminated, crashed): the next waiter gets a fresh one. */
  private replace(): void {
    const waiter = this.waiters.shift();
    if (waiter && !this.closed && this.threads.size < this.options.size) waiter.grant(this.spawn());
    else if (waiter) this.waiters.unshift(waiter);
  }

  private spawn(): PoolThread {
    const worker = new Worker(this.options.script ?? threadScriptPath(), { workerData: this.options.data });
    // Idle threads must not keep the process alive; the runtime closes the pool on shutdown.
    worker.unref();
    this.started += 1;
    let markExited!: () => void;
    const exited = new Promise<void>((resolve) => (markExited = resolve));
    const thread: PoolThread = { worker, call: undefined, exited };
    this.threads.add(thread);
    worker.on('message', (message: FromThread) => this.onMessage(thread, message));
    worker.on('error', (err) => {
      // An error the handler did not catch (say, thrown from a timer): the thread is going down.
      this.options.logger.warn('isolated handler thread crashed', { lane: this.options.lane, error: err.message });
      thread.call?.reject(err);
    });
    worker.on('exit', (code) => {
      markExited();
      const call = thread.call;
      thread.call = undefined;
      this.threads.delete(thread);
      const index = this.idle.indexOf(thread);
      if (index >= 0) this.idle.splice(index, 1);
      call?.reject(new Error(`isolated handler thread exited with code ${code}`));
      this.replace();
    });
    return thread;
  }

  private onMessage(thread: PoolThread, message: FromThread): void {
    if (message.type === 'fatal') {
      const err = deserializeError(message.error);
      this.options.logger.error('isolated handler thread could not load its handlers', { lane: this.options.lane, error: err.message });
      thread.call?.reject(err);
      void thread.worker.terminate();
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
