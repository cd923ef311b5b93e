// The CONSUMER span of one attempt, after OpenTelemetry's messaging conventions. Its parent is the
// PRODUCER span whose context the API stored with the job (meta.trace), so every attempt of a job
// joins the trace of the request that created it. While tracing is on it is a lean span (one per
// attempt, thousands a second); with tracing off it is OpenTelemetry's non-recording one, and
// nothing here builds an attribute or an event unless the span records.
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, context, trace, type Context, type Span } from '@opentelemetry/api';
import { extractTraceContext, leanSpans, tracer, type ErrorClass } from '@bullpen/core';
import type { AttemptRef, RetryReason } from './events';

export const ATTEMPT_EVENT = {
  acquiredSlot: 'acquired_slot',
  acquiredThread: 'acquired_thread',
  executionStarted: 'execution_started',
  executionSucceeded: 'execution_succeeded',
  executionFailed: 'execution_failed',
  timeoutWarning: 'timeout_warning',
  timeoutEscalated: 'timeout_escalated',
  retryScheduled: 'retry_scheduled',
} as const;

export class AttemptTrace {
  private readonly recording: boolean;
  /** The span's context, or undefined when there is nothing to propagate (tracing off). */
  private readonly ctx: Context | undefined;

  private constructor(readonly span: Span, parent: Context) {
    this.recording = span.isRecording();
    // A sampled-out span records nothing but its context must still travel, so that downstream
    // services honour the sampling decision.
    this.ctx = trace.isSpanContextValid(span.spanContext()) ? trace.setSpan(parent, span) : undefined;
  }

  /** Starts the span of an attempt; `carrier` is the W3C trace context stored with the job. */
  static start(ref: AttemptRef, carrier: Record<string, string> | undefined): AttemptTrace {
    // From the root, not from whatever context BullMQ's fetch loop happens to run in.
    const parent = extractTraceContext(carrier, ROOT_CONTEXT);
    const name = `process ${ref.lane}`;
    const lean = leanSpans();
    const span = lean
      ? lean.start(name, SpanKind.CONSUMER, parent, {
          'messaging.system': 'bullmq',
          'messaging.destination.name': ref.lane,
          'messaging.operation.type': 'process',
          'messaging.operation.name': 'process',
          'messaging.message.id': ref.jobId,
          'bullpen.lane': ref.lane,
          'bullpen.attempt': ref.attempt,
          'bullpen.max_attempts': ref.maxAttempts,
          'bullpen.job.name': ref.jobName,
        })
      : tracer().startSpan(name, { kind: SpanKind.CONSUMER }, parent);
    return new AttemptTrace(span, parent);
  }

  /** Runs `fn` with this span active: log lines get its ids, outbound calls become its children. */
  run<T>(fn: () => T): T {
    return this.ctx ? context.with(this.ctx, fn) : fn();
  }

  slotAcquired(slotWaitMs: number): void {
    if (!this.recording) return;
    this.span.setAttribute('bullpen.slot_wait_ms', slotWaitMs);
    this.span.addEvent(ATTEMPT_EVENT.acquiredSlot, { 'bullpen.slot_wait_ms': slotWaitMs });
  }

  /** An isolated lane's attempt took a ready handler thread, after waiting for one to start. */
  threadAcquired(threadWaitMs: number): void {
    if (!this.recording) return;
    this.span.setAttribute('bullpen.thread_wait_ms', threadWaitMs);
    this.span.addEvent(ATTEMPT_EVENT.acquiredThread, { 'bullpen.thread_wait_ms': threadWaitMs });
  }

  executionStarted(): void {
    if (this.recording) this.span.addEvent(ATTEMPT_EVENT.executionStarted);
  }

  executionSucceeded(handlerMs: number): void {
    if (this.recording) this.span.addEvent(ATTEMPT_EVENT.executionSucceeded, { 'bullpen.handler_ms': handlerMs });
  }

  timeoutWarning(timeoutMs: number, elapsedMs: number): void {
    if (!this.recording) return;
    this.span.addEvent(ATTEMPT_EVENT.timeoutWarning, { 'bullpen.timeout_ms': timeoutMs, 'bullpen.elapsed_ms': elapsedMs });
  }

  timeoutEscalated(cause: 'timeout' | 'cancelled', elapsedMs: number, terminated: boolean): void {
    if (!this.recording) return;
    this.span.addEvent(ATTEMPT_EVENT.timeoutEscalated, {
      'bullpen.stop_cause': cause,
      'bullpen.elapsed_ms': elapsedMs,
      'bullpen.handler_terminated': terminated,
    });
  }

  /**
   * The attempt failed: its class, whether the handler had started (execution_failed), and what
   * follows — a retry after `retry.delayMs` or nothing.
   */
  failed(
    failure: { errorClass: ErrorClass; message: string; executed: boolean },
    retry: { delayMs: number; reason: RetryReason } | undefined,
  ): void {
    if (!this.recording) return;
    const { span } = this;
    span.setStatus({ code: SpanStatusCode.ERROR, message: failure.message });
    span.setAttribute('error.type', failure.errorClass);
    if (failure.executed) span.addEvent(ATTEMPT_EVENT.executionFailed, { 'error.type': failure.errorClass });
    span.setAttribute('bullpen.will_retry', retry !== undefined);
    if (retry) {
      span.setAttribute('bullpen.retry.delay_ms', retry.delayMs);
      span.addEvent(ATTEMPT_EVENT.retryScheduled, { 'bullpen.retry.delay_ms': retry.delayMs, 'bullpen.retry.reason': retry.reason });
    }
  }

  /** The start ran no handler: the retry budget refused the deferred retry again, which waits
   * `delayMs` more. */
  deferredByBudget(delayMs: number): void {
    if (!this.recording) return;
    this.span.setAttribute('bullpen.will_retry', true);
    this.span.setAttribute('bullpen.retry.delay_ms', delayMs);
    this.span.addEvent(ATTEMPT_EVENT.retryScheduled, { 'bullpen.retry.delay_ms': delayMs, 'bullpen.retry.reason': 'budget_deferred' });
  }

  end(): void {
    this.span.end();
  }
}
