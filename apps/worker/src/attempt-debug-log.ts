// An attempt's log lines. They are debug lines: one info line per job would cost more than the job
// on a fast lane. Payloads and return values appear only with LOG_JOB_PAYLOADS, their
// LOG_REDACT_KEYS redacted. The lane comes from the lane's child logger; trace_id and span_id
// from the attempt's span, active while these are written.
import { redact, type ErrorClass, type Logger } from '@bullpen/core';
import type { AttemptRef, AttemptTimings } from './events';
import type { RetryPlan } from './retry-plan';

export interface PayloadLogging {
  /** config.logJobPayloads. */
  include: boolean;
  /** config.logRedactKeys. */
  redactKeys: ReadonlySet<string>;
}

export class AttemptDebugLog {
  /** The logger level debugEnabled was last worked out for, and the answer: winston's own check
   * allocates on every call, three times per job. */
  private checkedLevel: string | undefined;
  private debug = false;

  constructor(
    private readonly logger: Logger,
    private readonly payloads: PayloadLogging,
  ) {}

  private debugEnabled(): boolean {
    const { level } = this.logger;
    if (level !== this.checkedLevel) {
      this.debug = this.logger.isDebugEnabled();
      this.checkedLevel = level;
    }
    return this.debug;
  }

  started(ref: AttemptRef, payload: unknown): void {
    if (!this.debugEnabled()) return;
    this.logger.debug('attempt started', {
      ...fields(ref),
      ...(this.payloads.include ? { payload: redact(payload, this.payloads.redactKeys) } : {}),
    });
  }

  succeeded(ref: AttemptRef, timings: AttemptTimings, result: unknown): void {
    if (!this.debugEnabled()) return;
    this.logger.debug('attempt succeeded', {
      ...fields(ref),
      run_ms: timings.durationMs,
      slot_wait_ms: timings.slotWaitMs,
      ...(this.payloads.include ? { result: redact(result, this.payloads.redactKeys) } : {}),
    });
  }

  failed(ref: AttemptRef, errorClass: ErrorClass, plan: RetryPlan): void {
    if (!this.debugEnabled()) return;
    this.logger.debug('attempt failed', {
      ...fields(ref),
      error_class: errorClass,
      plan: plan.kind,
      delay_ms: plan.kind === 'retry' ? plan.delayMs : null,
    });
  }
}

function fields(ref: AttemptRef): Record<string, unknown> {
  return { job_id: ref.jobId, job_name: ref.jobName, attempt: ref.attempt, tenant: ref.tenant ?? null };
}
