// Bullpen's own lane events as the flat field/value pairs XADD takes; lane-event-decoder.ts reads
// them back.
import { LANE_EVENT, type BullpenLaneEvent, type CompletedAttemptRow, type FlushToken, type LaneEventSubject } from './lane-event-types';

const num = (n: number): string => String(n);

function optional(fields: string[], key: string, value: string | number | undefined): void {
  if (value !== undefined) fields.push(key, String(value));
}

function subjectFields(fields: string[], ev: LaneEventSubject): string[] {
  optional(fields, 'tenant', ev.tenant);
  optional(fields, 'attempt', ev.attempt);
  optional(fields, 'worker', ev.worker);
  return fields;
}

/** Flat field/value pairs for XADD. */
export function encodeLaneEvent(ev: BullpenLaneEvent): string[] {
  switch (ev.event) {
    case LANE_EVENT.attempt: {
      const fields = ['event', ev.event, 'jobId', ev.jobId, 'name', ev.name, 'tenant', ev.tenant];
      fields.push('attempt', num(ev.attempt), 'outcome', ev.outcome);
      if (ev.outcome === 'failed') fields.push('errorClass', ev.errorClass ?? 'unknown');
      fields.push('willRetry', ev.willRetry ? '1' : '0', 'runMs', num(ev.runMs), 'waitMs', num(ev.waitMs));
      if (ev.willRetry && ev.delayMs !== undefined) fields.push('delayMs', num(ev.delayMs));
      fields.push('worker', ev.worker);
      if (ev.outcome === 'failed' && ev.retryable !== undefined) fields.push('retryable', ev.retryable ? '1' : '0');
      if (ev.willRetry && ev.retry) {
        const { reason, strategy, source, retryAfterMs, nextAttempt } = ev.retry;
        fields.push('retryReason', reason, 'strategy', strategy, 'delaySource', source, 'nextAttempt', num(nextAttempt));
        optional(fields, 'retryAfterMs', retryAfterMs);
      }
      return fields;
    }
    case LANE_EVENT.completedAttempts: {
      const fields = ['event', ev.event, 'worker', ev.worker, 'attempts', encodeCompletedAttempts(ev.attempts)];
      if (ev.flush) fields.push('flush', encodeFlushToken(ev.flush));
      return fields;
    }
    case LANE_EVENT.retryBudgetExhausted: {
      const fields = ['event', ev.event, 'jobId', ev.jobId, 'action', ev.action];
      optional(fields, 'name', ev.name);
      optional(fields, 'errorClass', ev.errorClass);
      optional(fields, 'retriesInWindow', ev.retriesInWindow);
      optional(fields, 'allowedInWindow', ev.allowedInWindow);
      return subjectFields(fields, ev);
    }
    case LANE_EVENT.dead: {
      const fields = ['event', ev.event, 'jobId', ev.jobId, 'name', ev.name, 'errorClass', ev.errorClass, 'reason', ev.reason];
      optional(fields, 'attemptsMade', ev.attemptsMade);
      if (ev.withoutAttempt) fields.push('withoutAttempt', '1');
      return subjectFields(fields, ev);
    }
    case LANE_EVENT.rejected:
      return ['event', ev.event, 'count', num(ev.count), 'reason', ev.reason];
    case LANE_EVENT.reclaimed: {
      const fields = ['event', ev.event, 'jobId', ev.jobId, 'name', ev.name, 'lostStarts', num(ev.lostStarts)];
      optional(fields, 'previousWorker', ev.previousWorker);
      return subjectFields(fields, ev);
    }
  }
}

/** A completed attempt as it is stored in a bp:completed_attempts entry. */
export type CompletedAttemptTuple = [jobId: string, name: string, tenant: string, attempt: number, runMs: number, waitMs: number];

/** The `attempts` field of a bp:completed_attempts entry. */
export function encodeCompletedAttempts(rows: readonly CompletedAttemptRow[]): string {
  return JSON.stringify(rows.map((r): CompletedAttemptTuple => [r.jobId, r.name, r.tenant, r.attempt, r.runMs, r.waitMs]));
}

/** The `flush` field of a bp:completed_attempts entry: `<writer>:<seq>`. */
export function encodeFlushToken(token: FlushToken): string {
  return `${token.writer}:${token.seq}`;
}
