// The lifecycle event log (EVENT_LOG_FILE): the runtime's typed events as JSON lines with one
// envelope {ts, event, lane, job_id, job_name, tenant, attempt, worker_id, ...payload}, written
// through core's EventLog (size rotation; never throws, never blocks the worker). `bullpen report`
// (apps/cli/src/report.ts) reads these names and fields: lease_created with attempt 1 is a
// started job, completed (run_ms) a success, failed with final true a failure, retry_scheduled a
// retry.
import { EventLog, type Logger } from '@bullpen/core';
import type { AttemptRef, WorkerEventMap } from './events';

export const LIFECYCLE_EVENT = {
  leaseCreated: 'lease_created',
  reclaimWinner: 'reclaim_winner',
  backoffApplied: 'backoff_applied',
  retryScheduled: 'retry_scheduled',
  retryBudgetExhausted: 'retry_budget_exhausted',
  maxRetriesReached: 'max_retries_reached',
  completed: 'completed',
  failed: 'failed',
} as const;

export type LifecycleLine = Record<string, unknown> & { ts: string; event: string };

export interface LifecycleLogOptions {
  /** config.eventLogFile. */
  file: string;
  /** config.eventLogMaxBytes. */
  maxBytes: number;
  /** config.eventLogMaxFiles. */
  maxFiles: number;
  logger: Logger;
  /** Called after each failed write (its lines were dropped). */
  onWriteFailed(failure: { errors: number; errorsTotal: number; droppedLinesTotal: number }): void;
  /** How often buffered lines are written; default 200 ms. */
  flushIntervalMs?: number;
  /** Clock, for tests; default Date.now. */
  now?: () => number;
}

/** Where lifecycle events come from: the runtime (or anything with its typed `on`/`off`). */
export interface LifecycleSource {
  on<K extends keyof WorkerEventMap>(event: K, listener: (payload: WorkerEventMap[K]) => void): unknown;
  off<K extends keyof WorkerEventMap>(event: K, listener: (payload: WorkerEventMap[K]) => void): unknown;
}

export class LifecycleLog {
  private readonly log: EventLog;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;
  private errorsReported = 0;
  private detach: Array<() => void> = [];
  /** The job whose terminal job:failed was just written: its job:dead follows in the same tick. */
  private finalFailure: string | undefined;

  constructor(private readonly options: LifecycleLogOptions) {
    this.now = options.now ?? Date.now;
    const { file, maxBytes, maxFiles, logger } = options;
    this.log = new EventLog({
      file,
      maxBytes,
      maxFiles,
      // EventLog reports the first error of each kind only: one line per cause, not per write.
      onError: (err) =>
        logger.error('lifecycle event log: write failed; its lines are dropped, jobs go on', {
          file,
          code: err.code ?? err.name,
          error: err.message,
        }),
    });
  }

  get errorsTotal(): number {
    return this.log.errors;
  }

  get droppedLinesTotal(): number {
    return this.log.droppedLines;
  }

  /** Subscribes to `source` and starts the periodic write. */
  start(source: LifecycleSource): void {
    const listen = <K extends keyof WorkerEventMap>(event: K, toLines: (payload: WorkerEventMap[K]) => LifecycleLine[]) => {
      const listener = (payload: WorkerEventMap[K]) => {
        for (const line of toLines(payload)) this.log.write(line);
      };
      source.on(event, listener);
      this.detach.push(() => source.off(event, listener));
    };
    listen('job:started', (e) => [this.line(LIFECYCLE_EVENT.leaseCreated, e, { attempts_started: e.attemptsStarted })]);
    listen('job:reclaimed', (e) => [
      this.line(LIFECYCLE_EVENT.reclaimWinner, e, { previous_worker: e.previousWorker ?? null, lost_starts: e.lostStarts }),
    ]);
    listen('job:backoff-applied', (e) => [
      this.line(LIFECYCLE_EVENT.backoffApplied, e, {
        delay_ms: e.delayMs,
        strategy: e.strategy,
        source: e.source,
        retry_after_ms: e.retryAfterMs ?? null,
      }),
    ]);
    listen('job:retrying', (e) => [
      this.line(LIFECYCLE_EVENT.retryScheduled, e, {
        reason: e.reason,
        delay_ms: e.delayMs,
        error_class: e.errorClass,
        next_attempt: e.nextAttempt,
      }),
    ]);
    listen('job:retry-budget-exhausted', (e) => [
      this.line(LIFECYCLE_EVENT.retryBudgetExhausted, e, {
        action: e.action,
        error_class: e.errorClass,
        retries_in_window: e.retriesInWindow,
        allowed_in_window: e.allowedInWindow,
      }),
    ]);
    listen('job:completed', (e) => [
      this.line(LIFECYCLE_EVENT.completed, e, {
        run_ms: e.durationMs,
        wait_ms: e.waitMs,
        slot_wait_ms: e.slotWaitMs,
        handler_ms: e.handlerMs,
      }),
    ]);
    listen('job:failed', (e) => {
      if (!e.willRetry) this.finalFailure = jobKey(e);
      return [
        this.line(LIFECYCLE_EVENT.failed, e, {
          error_class: e.errorClass,
          final: !e.willRetry,
          retryable: e.retryable,
          run_ms: e.durationMs,
          delay_ms: e.delayMs,
        }),
      ];
    });
    listen('job:dead', (e) => {
      const lines: LifecycleLine[] = [];
      // A job BullMQ failed without running it here (it stalled too often) had no job:failed.
      if (this.finalFailure !== jobKey(e)) {
        lines.push(this.line(LIFECYCLE_EVENT.failed, e, { error_class: e.errorClass, final: true, reason: e.reason, run_ms: null }));
      }
      this.finalFailure = undefined;
      if (e.reason === 'attempts_exhausted') {
        lines.push(this.line(LIFECYCLE_EVENT.maxRetriesReached, e, { error_class: e.errorClass, attempts_made: e.attemptsMade }));
      }
      return lines;
    });
    this.timer = setInterval(() => void this.flush(), this.options.flushIntervalMs ?? 200);
    this.timer.unref();
  }

  /** Writes what is buffered; never rejects. */
  async flush(): Promise<void> {
    await this.log.flush();
    this.reportFailures();
  }

  /** Unsubscribes and writes what is left. */
  async close(): Promise<void> {
    for (const off of this.detach) off();
    this.detach = [];
    clearInterval(this.timer);
    this.timer = undefined;
    await this.log.close();
    this.reportFailures();
  }

  private reportFailures(): void {
    const errors = this.log.errors - this.errorsReported;
    if (errors === 0) return;
    this.errorsReported = this.log.errors;
    this.options.onWriteFailed({ errors, errorsTotal: this.log.errors, droppedLinesTotal: this.log.droppedLines });
  }

  private line(event: string, ref: AttemptRef, payload: Record<string, unknown>): LifecycleLine {
    return {
      ts: new Date(this.now()).toISOString(),
      event,
      lane: ref.lane,
      job_id: ref.jobId,
      job_name: ref.jobName,
      tenant: ref.tenant ?? null,
      attempt: ref.attempt,
      worker_id: ref.workerId,
      ...payload,
    };
  }
}

function jobKey(ref: Pick<AttemptRef, 'lane' | 'jobId'>): string {
  return `${ref.lane}\u0000${ref.jobId}`;
}
