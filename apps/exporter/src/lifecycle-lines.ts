// What a lane stream entry means in the lifecycle event log (format in core's lifecycle-log.ts,
// shared with the worker's log). Pure. A line's ts is the entry's time in the stream, and every
// line carries the entry's id as stream_id, so that lines written twice around a crash can be told
// apart from new ones (`bullpen report` skips them).
//
// The stream carries each attempt once it ended (bp:attempt), so the lease of an attempt is
// written then, with the time it began (entry time − run_ms); a lease that never ended (its worker
// died) leaves no line, and the worker that takes the job over, under the same attempt number,
// publishes bp:reclaimed (a reclaim_winner line). What only the worker process knows (where an
// attempt's time went, BullMQ's count of starts) is null, as is what an older worker did not
// publish. Entries trimmed before the exporter read them give an events_lost line instead.
import {
  attemptsOf,
  LANE_EVENT,
  LIFECYCLE_EVENT as E,
  lifecycleLine,
  type DecodedLaneEvent,
  type EventsLost,
  type LifecycleLine,
  type LifecycleSubject,
} from '@bullpen/core';
import { START_POSITION, streamIdTimeMs, type StreamInfo } from './stream-loss';

/**
 * `lost` entries trimmed after `fromStreamId` (the `entriesBefore`th entry the stream ever had) and
 * before the stream's first entry now (or, when it holds none, up to its last id): what their
 * events_lost line says.
 */
export function eventsLost(lane: string, lost: number, fromStreamId: string, entriesBefore: number, info: StreamInfo): EventsLost {
  const to = info.firstEntryId;
  return {
    lane,
    lost,
    fromMs: fromStreamId === START_POSITION ? null : streamIdTimeMs(fromStreamId),
    toMs: streamIdTimeMs(to ?? info.lastGeneratedId),
    fromStreamId,
    entriesBefore,
    toStreamId: to ?? null,
  };
}

export function laneEventLines(lane: string, entryId: string, ev: DecodedLaneEvent): LifecycleLine[] {
  const at = streamIdTimeMs(entryId);
  const extra = { stream_id: entryId };
  const subject = (s: { jobId: string; name?: string; tenant?: string; attempt?: number; worker?: string }): LifecycleSubject => ({
    lane,
    jobId: s.jobId,
    jobName: s.name || null,
    tenant: s.tenant,
    attempt: s.attempt ?? null,
    workerId: s.worker || null,
  });
  switch (ev.event) {
    case LANE_EVENT.attempt: {
      const who = subject(ev);
      const lines = [lifecycleLine(E.leaseCreated, who, { attempts_started: null }, at - ev.runMs, extra)];
      if (ev.outcome === 'completed') {
        lines.push(lifecycleLine(E.completed, who, { run_ms: ev.runMs, wait_ms: ev.waitMs, slot_wait_ms: null, handler_ms: null }, at, extra));
        return lines;
      }
      const errorClass = ev.errorClass ?? 'unknown';
      const delayMs = ev.willRetry ? (ev.delayMs ?? null) : null;
      const failed = { error_class: errorClass, final: !ev.willRetry, retryable: ev.retryable ?? null, run_ms: ev.runMs, delay_ms: delayMs };
      lines.push(lifecycleLine(E.failed, who, failed, at, extra));
      if (delayMs !== null) {
        const { retry } = ev;
        const backoff = { delay_ms: delayMs, strategy: retry?.strategy ?? null, source: retry?.source ?? null, retry_after_ms: retry?.retryAfterMs ?? null };
        const scheduled = { reason: retry?.reason ?? null, delay_ms: delayMs, error_class: errorClass, next_attempt: retry?.nextAttempt ?? null };
        lines.push(lifecycleLine(E.backoffApplied, who, backoff, at, extra), lifecycleLine(E.retryScheduled, who, scheduled, at, extra));
      }
      return lines;
    }
    case LANE_EVENT.completedAttempts:
      // Many completed attempts to an entry, written at most 50 ms after they ended: each reads as
      // its own bp:attempt at the entry's time.
      return attemptsOf(ev).flatMap((attempt) => laneEventLines(lane, entryId, attempt));
    case LANE_EVENT.reclaimed:
      return [
        lifecycleLine(E.reclaimWinner, subject(ev), { previous_worker: ev.previousWorker ?? null, lost_starts: ev.lostStarts }, at, extra),
      ];
    case LANE_EVENT.retryBudgetExhausted:
      return [
        lifecycleLine(
          E.retryBudgetExhausted,
          subject(ev),
          {
            action: ev.action,
            error_class: ev.errorClass ?? null,
            retries_in_window: ev.retriesInWindow ?? null,
            allowed_in_window: ev.allowedInWindow ?? null,
          },
          at,
          extra,
        ),
      ];
    case LANE_EVENT.dead: {
      const who = subject(ev);
      const lines: LifecycleLine[] = [];
      // Other dead jobs had their final failed line from their last bp:attempt.
      if (ev.withoutAttempt) {
        lines.push(lifecycleLine(E.failed, who, { error_class: ev.errorClass, final: true, reason: ev.reason, run_ms: null }, at, extra));
      }
      if (ev.reason === 'attempts_exhausted') {
        lines.push(lifecycleLine(E.maxRetriesReached, who, { error_class: ev.errorClass, attempts_made: ev.attemptsMade ?? null }, at, extra));
      }
      return lines;
    }
    default:
      return [];
  }
}
