// One lane served by this process: a BullMQ Worker on the lane's queue, with the lane's
// concurrency and lock duration, running each job through an AttemptRunner, and turning BullMQ's
// worker events into the runtime's lifecycle events.
import { redisOptions } from '@bullpen/core';
import { Worker, type Job, type RedisOptions } from 'bullmq';
import { AttemptRunner, type AttemptDeps } from './attempt';

export class LaneWorker {
  private worker: Worker | undefined;
  private readonly runner: AttemptRunner;

  constructor(private readonly deps: AttemptDeps) {
    this.runner = new AttemptRunner(deps);
  }

  get lane(): string {
    return this.deps.lane;
  }

  /** Creates the BullMQ Worker, which starts fetching jobs, and waits until it is connected. */
  async start(): Promise<void> {
    const { config, lane, policy, logger } = this.deps;
    const worker = new Worker(
      lane,
      // Three parameters: BullMQ passes a per-job AbortSignal (for cancelJob) only to processors
      // that declare the third one.
      (job: Job, _token: string | undefined, signal: AbortSignal | undefined) => this.runner.process(job, signal),
      {
        connection: workerConnection(config.redisUrl, `bullpen:worker:${lane}`),
        prefix: config.prefix,
        concurrency: policy.concurrency,
        lockDuration: policy.lockDurationMs,
        name: config.workerId,
        settings: { backoffStrategy: (attemptsMade, _type, err) => this.runner.delayFor(attemptsMade, err) },
      },
    );
    this.worker = worker;
    worker.on('error', (err) => logger.error('lane worker error', { error: err.message }));
    worker.on('completed', (job) => this.onCompleted(job));
    worker.on('failed', (job, err) => this.onFailed(job, err));
    worker.on('stalled', (jobId) => this.deps.emit('job:stalled', { lane, jobId, workerId: config.workerId }));
    await worker.waitUntilReady();
  }

  /** Aborts the signal of a job this worker is running; false when it runs no such job. */
  cancel(jobId: string, reason: string): boolean {
    return this.worker?.cancelJob(jobId, reason) ?? false;
  }

  /** Stops taking jobs and resolves once the active ones have finished and been recorded. */
  async drain(): Promise<void> {
    await this.worker?.pause();
  }

  /** Closes the worker and its connections; `force` does not wait for active jobs. */
  async close(force: boolean): Promise<void> {
    await this.worker?.close(force);
  }

  private onCompleted(job: Job): void {
    const done = this.runner.completionOf(job);
    if (done) this.deps.emit('job:completed', { ...done.ref, ...done.timings });
  }

  private onFailed(job: Job | undefined, err: Error): void {
    const failed = this.runner.failureOf(err);
    if (!job || !failed) {
      // BullMQ failed the job without running our processor (e.g. a deferred failure).
      if (job) {
        this.deps.emit('job:dead', {
          lane: this.deps.lane,
          jobId: job.id ?? '',
          jobName: job.name,
          tenant: undefined,
          attempt: job.attemptsMade,
          maxAttempts: Math.max(1, job.opts.attempts ?? 1),
          workerId: this.deps.config.workerId,
          errorClass: 'unknown',
          reason: err.message,
          attemptsMade: job.attemptsMade,
        });
      }
      return;
    }
    const { ref, timings, classification, decision, message } = failed;
    this.deps.emit('job:failed', {
      ...ref,
      ...timings,
      errorClass: classification.errorClass,
      message,
      retryable: classification.retryable,
      willRetry: decision.willRetry,
      delayMs: decision.delayMs,
    });
    if (decision.willRetry) {
      this.deps.emit('job:retrying', {
        ...ref,
        errorClass: classification.errorClass,
        delayMs: decision.delayMs ?? 0,
        nextAttempt: ref.attempt + 1,
      });
    } else {
      this.deps.emit('job:dead', { ...ref, errorClass: classification.errorClass, reason: message, attemptsMade: ref.attempt });
    }
  }
}

/** The core worker-role options (maxRetriesPerRequest null) plus the URL, as BullMQ wants them.
 * ioredis's retryStrategy type admits null where BullMQ's does not, hence the unpacking. */
function workerConnection(url: string, name: string): RedisOptions {
  const { retryStrategy, ...rest } = redisOptions('worker', name);
  return { ...rest, ...(retryStrategy ? { retryStrategy: (times: number) => retryStrategy(times) ?? null } : {}), url };
}
