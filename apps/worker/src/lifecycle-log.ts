// Feeds the lifecycle event log (EVENT_LOG_FILE; format and writer in core's lifecycle-log.ts)
// from the runtime's typed events: this process's view of each job, with the timings and retry
// details that the lane streams, and so the exporter's log, do not carry.
import {
  LIFECYCLE_EVENT as E,
  lifecycleLine,
  type LifecycleEventName,
  type LifecycleLine,
  type LifecyclePayloads,
} from '@bullpen/core';
import type { AttemptRef, WorkerEventMap } from './events';

/** Where lifecycle events come from: the runtime (or anything with its typed `on`/`off`). */
export interface LifecycleSource {
  on<K extends keyof WorkerEventMap>(event: K, listener: (payload: WorkerEventMap[K]) => void): unknown;
  off<K extends keyof WorkerEventMap>(event: K, listener: (payload: WorkerEventMap[K]) => void): unknown;
}

/** Writes `source`'s lifecycle events to `log` until the returned function is called. */
export function recordLifecycle(source: LifecycleSource, log: { write(line: LifecycleLine): void }, now: () => number = Date.now): () => void {
  const detach: Array<() => void> = [];
  const line = <K extends LifecycleEventName>(event: K, ref: AttemptRef, payload: LifecyclePayloads[K]) =>
    lifecycleLine(event, ref, payload, now());
  const on = <K extends keyof WorkerEventMap>(event: K, toLines: (payload: WorkerEventMap[K]) => LifecycleLine[]) => {
    const listener = (payload: WorkerEventMap[K]) => {
      for (const l of toLines(payload)) log.write(l);
    };
    source.on(event, listener);
    detach.push(() => source.off(event, listener));
  };
  /** The job whose terminal job:failed was just written: its job:dead follows in the same tick. */
  let finalFailure: string | undefined;

  on('job:started', (e) => [line(E.leaseCreated, e, { attempts_started: e.attemptsStarted })]);
  on('job:reclaimed', (e) => [line(E.reclaimWinner, e, { previous_worker: e.previousWorker ?? null, lost_starts: e.lostStarts })]);
  on('job:backoff-applied', (e) => [
    line(E.backoffApplied, e, { delay_ms: e.delayMs, strategy: e.strategy, source: e.source, retry_after_ms: e.retryAfterMs ?? null }),
  ]);
  on('job:retrying', (e) => [
    line(E.retryScheduled, e, { reason: e.reason, delay_ms: e.delayMs, error_class: e.errorClass, next_attempt: e.nextAttempt }),
  ]);
  on('job:retry-budget-exhausted', (e) => [
    line(E.retryBudgetExhausted, e, {
      action: e.action,
      error_class: e.errorClass,
      retries_in_window: e.retriesInWindow,
      allowed_in_window: e.allowedInWindow,
    }),
  ]);
  on('job:completed', (e) => [
    line(E.completed, e, { run_ms: e.durationMs, wait_ms: e.waitMs, slot_wait_ms: e.slotWaitMs, handler_ms: e.handlerMs }),
  ]);
  on('job:failed', (e) => {
    if (!e.willRetry) finalFailure = jobKey(e);
    return [
      line(E.failed, e, { error_class: e.errorClass, final: !e.willRetry, retryable: e.retryable, run_ms: e.durationMs, delay_ms: e.delayMs }),
    ];
  });
  on('job:dead', (e) => {
    const lines: LifecycleLine[] = [];
    // A job BullMQ failed without running it here (it stalled too often) had no job:failed.
    if (finalFailure !== jobKey(e)) lines.push(line(E.failed, e, { error_class: e.errorClass, final: true, reason: e.reason, run_ms: null }));
    finalFailure = undefined;
    if (e.reason === 'attempts_exhausted') {
      lines.push(line(E.maxRetriesReached, e, { error_class: e.errorClass, attempts_made: e.attemptsMade }));
    }
    return lines;
  });
  return () => {
    for (const off of detach.splice(0)) off();
  };
}

function jobKey(ref: Pick<AttemptRef, 'lane' | 'jobId'>): string {
  return `${ref.lane}\u0000${ref.jobId}`;
}
