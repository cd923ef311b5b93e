// The lifecycle event log's format and writer, shared by the worker (from its typed events, one log
// per process) and the exporter (from the lanes' event streams, one log for the deployment), so
// that a line of a given kind has the same envelope and fields whoever wrote it. `bullpen report`
// (apps/cli/src/report.ts) reads these names and fields: lease_created with attempt 1 is a started
// job (unless it repeats the attempt: attempts_started above 1, or a retry_scheduled before it
// naming the same attempt as next_attempt), completed (run_ms) a success, failed with final true a
// failure, retry_scheduled a retry. One line is about a lane rather than a job: events_lost, which
// the exporter writes when lane stream entries were trimmed before it read them, so that a report
// over its log can say what its figures miss.
import { EventLog } from './event-log';
import type { Logger } from './logger';

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

/** Which job and attempt a line is about: the envelope besides `ts` and `event`. Null where the
 * writer cannot know the value. */
export interface LifecycleSubject {
  lane: string;
  jobId: string;
  jobName: string | null;
  /** undefined or '' (jobs added by plain BullMQ clients) is written as null. */
  tenant: string | null | undefined;
  attempt: number | null;
  workerId: string | null;
}

/** The fields each kind of line carries after the envelope, in the order written. */
export interface LifecyclePayloads {
  lease_created: { attempts_started: number | null };
  reclaim_winner: { previous_worker: string | null; lost_starts: number };
  backoff_applied: { delay_ms: number; strategy: string | null; source: string | null; retry_after_ms: number | null };
  retry_scheduled: { reason: string | null; delay_ms: number; error_class: string; next_attempt: number | null };
  retry_budget_exhausted: {
    action: 'defer' | 'fail';
    error_class: string | null;
    retries_in_window: number | null;
    allowed_in_window: number | null;
  };
  max_retries_reached: { error_class: string; attempts_made: number | null };
  completed: { run_ms: number; wait_ms: number; slot_wait_ms: number | null; handler_ms: number | null };
  failed:
    | { error_class: string; final: boolean; retryable: boolean | null; run_ms: number; delay_ms: number | null }
    /** A job BullMQ failed without running an attempt (it stalled too often): why it ended. */
    | { error_class: string; final: true; reason: string; run_ms: null };
}

export type LifecycleEventName = keyof LifecyclePayloads;

export type LifecycleLine = Record<string, unknown> & { ts: string; event: LifecycleEventName };

/** One line: the envelope {ts, event, lane, job_id, job_name, tenant, attempt, worker_id}, then
 * the payload, then `extra` (fields one writer adds to every line, such as the exporter's
 * stream_id). */
export function lifecycleLine<K extends LifecycleEventName>(
  event: K,
  subject: LifecycleSubject,
  payload: LifecyclePayloads[K],
  tsMs: number,
  extra?: Record<string, unknown>,
): LifecycleLine {
  return {
    ts: new Date(tsMs).toISOString(),
    event,
    lane: subject.lane,
    job_id: subject.jobId,
    job_name: subject.jobName,
    tenant: subject.tenant || null,
    attempt: subject.attempt,
    worker_id: subject.workerId,
    ...payload,
    ...extra,
  };
}

export const EVENTS_LOST = 'events_lost';

/**
 * Lane stream entries trimmed before the exporter read them: they give no lines. The envelope is
 * {ts, event, lane} only (no job fields: the entries are unknown). `ts` is the newest time a lost
 * entry can have (the time of to_stream_id, or of the stream's last entry when it kept none after
 * them); `from_ts` the time of from_stream_id, null when the loss runs from the stream's start.
 */
export type EventsLostLine = Record<string, unknown> & {
  ts: string;
  event: typeof EVENTS_LOST;
  lane: string;
  /** How many entries (not jobs: one job makes several). */
  lost: number;
  from_ts: string | null;
  /** The last entry accounted for before them ('0-0': the stream's start). */
  from_stream_id: string;
  /** How many entries the stream had had before them: with from_stream_id, which loss this is
   * (the same loss written again has the same two). */
  entries_before: number;
  /** The first entry the stream kept after them; null when it kept none. */
  to_stream_id: string | null;
};

export interface EventsLost {
  lane: string;
  lost: number;
  /** Epoch ms of from_stream_id; null when unknown (the stream's start). */
  fromMs: number | null;
  /** Epoch ms of the newest entry the loss can include. */
  toMs: number;
  fromStreamId: string;
  entriesBefore: number;
  toStreamId: string | null;
}

export function eventsLostLine(loss: EventsLost): EventsLostLine {
  return {
    ts: new Date(loss.toMs).toISOString(),
    event: EVENTS_LOST,
    lane: loss.lane,
    lost: loss.lost,
    from_ts: loss.fromMs === null ? null : new Date(loss.fromMs).toISOString(),
    from_stream_id: loss.fromStreamId,
    entries_before: loss.entriesBefore,
    to_stream_id: loss.toStreamId,
  };
}

/** Any line of a lifecycle event log. */
export type EventLogLine = LifecycleLine | EventsLostLine;

/** How long close() waits for the last lines to be written. */
export const CLOSE_BOUND_MS = 5000;

export interface LifecycleWriteFailure {
  /** Failed writes since the previous report. */
  errors: number;
  errorsTotal: number;
  droppedLinesTotal: number;
}

export interface LifecycleLinesDropped {
  /** Lines dropped since the previous report: their write failed, or the buffer was full. */
  lines: number;
  droppedLinesTotal: number;
}

export interface LifecycleLogOptions {
  /** EVENT_LOG_FILE. */
  file: string;
  /** EVENT_LOG_MAX_BYTES. */
  maxBytes: number;
  /** EVENT_LOG_MAX_FILES. */
  maxFiles: number;
  /** EVENT_LOG_MAX_BUFFERED_LINES; default 100,000. */
  maxBufferedLines?: number;
  /** The first failure of each kind (ENOSPC, EACCES, …) is logged here, once. */
  logger: Logger;
  /** Called after each flush that failed (its lines were dropped): for a metric. */
  onWriteFailed(failure: LifecycleWriteFailure): void;
  /**
   * Called when lines were dropped since the previous report, whatever the cause: for a metric.
   * Reported at each periodic write, even while an earlier write hangs, and on close.
   */
  onLinesDropped(drop: LifecycleLinesDropped): void;
  /** How often buffered lines are written; default 200 ms. */
  flushIntervalMs?: number;
}

/**
 * The lifecycle log file: lines are buffered and written asynchronously with size rotation
 * (EventLog). Never throws and never blocks its caller; a failed write drops its lines, is
 * reported through onWriteFailed, and is logged once per kind of error. A line that finds the
 * buffer full (the disk is slow or stuck) is dropped, and the first such line is logged. Every
 * dropped line is reported through onLinesDropped.
 */
export class LifecycleLog {
  private readonly log: EventLog;
  private timer: NodeJS.Timeout | undefined;
  private errorsReported = 0;
  private droppedLinesReported = 0;

  constructor(private readonly options: LifecycleLogOptions) {
    const { file, maxBytes, maxFiles, maxBufferedLines, logger } = options;
    this.log = new EventLog({
      file,
      maxBytes,
      maxFiles,
      ...(maxBufferedLines !== undefined ? { maxBufferedLines } : {}),
      onBufferFull: (max) =>
        logger.warn('lifecycle event log: write buffer full (the disk is slow or stuck); new lines are dropped, jobs go on', {
          file,
          max_buffered_lines: max,
        }),
      // EventLog reports the first error of each kind only: one line per cause, not per write.
      onError: (err) =>
        logger.error('lifecycle event log: write failed; its lines are dropped, jobs go on', {
          file,
          code: err.code ?? err.name,
          error: err.message,
        }),
    });
  }

  get file(): string {
    return this.options.file;
  }

  get errorsTotal(): number {
    return this.log.errors;
  }

  get droppedLinesTotal(): number {
    return this.log.droppedLines;
  }

  /** Starts the periodic write. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      // Not after the flush: a write that hangs must not hold back the count of what is dropped.
      this.reportDroppedLines();
      void this.flush();
    }, this.options.flushIntervalMs ?? 200);
    this.timer.unref();
  }

  /** Queues one line; never throws. */
  write(line: EventLogLine): void {
    this.log.write(line);
  }

  /** Writes what is buffered; never rejects. */
  async flush(): Promise<void> {
    await this.log.flush();
    this.reportFailures();
    this.reportDroppedLines();
  }

  /**
   * Stops the periodic write and writes what is left, for at most `boundMs`: a file system that
   * hangs (a stuck network mount, a pipe nobody reads) must not keep the process from exiting.
   * Lines not written by then are dropped, and a warning says so.
   */
  async close(boundMs = CLOSE_BOUND_MS): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(resolve, boundMs, 'late');
      timer.unref();
    });
    const outcome = await Promise.race([this.log.close().then(() => 'written' as const), late]);
    clearTimeout(timer);
    this.reportDroppedLines();
    if (outcome === 'late') {
      this.options.logger.warn('lifecycle event log: its last lines could not be written in time; they are dropped', {
        file: this.options.file,
        bound_ms: boundMs,
      });
      return;
    }
    this.reportFailures();
  }

  private reportDroppedLines(): void {
    const lines = this.log.droppedLines - this.droppedLinesReported;
    if (lines === 0) return;
    this.droppedLinesReported = this.log.droppedLines;
    try {
      this.options.onLinesDropped({ lines, droppedLinesTotal: this.log.droppedLines });
    } catch {
      // A failing listener must not break the log.
    }
  }

  private reportFailures(): void {
    const errors = this.log.errors - this.errorsReported;
    if (errors === 0) return;
    this.errorsReported = this.log.errors;
    try {
      this.options.onWriteFailed({ errors, errorsTotal: this.log.errors, droppedLinesTotal: this.log.droppedLines });
    } catch {
      // A failing listener must not break the log.
    }
  }
}
