// Turns one lane's batch of decoded stream entries into counter and histogram deltas. Pure: the
// one thing it cannot know from the entries, the error class of a terminal failure, is passed in
// by the caller after reading the job's last attempt row.
import {
  DECODED_EVENT_NAMES,
  LANE_EVENT,
  metricDefinition,
  type DecodedLaneEvent,
  type ErrorClass,
  type MetricDefinition,
  type MetricLabels,
  type MetricName,
} from '@bullpen/core';
import { LaneDelta, bucketIndex } from './stored-series';

function def(name: MetricName): MetricDefinition {
  const found = metricDefinition(name);
  if (!found) throw new Error(`metric ${name} is not in the catalogue`);
  return found;
}

const M = {
  enqueued: def('bullpen_jobs_enqueued_total'),
  completed: def('bullpen_jobs_completed_total'),
  failed: def('bullpen_jobs_failed_total'),
  deadLettered: def('bullpen_jobs_dead_lettered_total'),
  attempts: def('bullpen_job_attempts_total'),
  attemptsFailed: def('bullpen_job_attempts_failed_total'),
  retried: def('bullpen_jobs_retried_total'),
  stalled: def('bullpen_jobs_stalled_total'),
  budgetExhausted: def('bullpen_retry_budget_exhausted_total'),
  rejected: def('bullpen_jobs_rejected_total'),
  runDuration: def('bullpen_job_run_duration_seconds'),
  waitDuration: def('bullpen_job_wait_duration_seconds'),
  backoffDelay: def('bullpen_job_backoff_delay_seconds'),
  processed: def('bullpen_exporter_events_processed_total'),
  negativeDurations: def('bullpen_exporter_negative_timings_total'),
  lost: def('bullpen_exporter_events_lost_total'),
  lostAt: def('bullpen_exporter_events_lost_last_timestamp_seconds'),
} as const;
export const EVENT_METRICS = M;

const COUNTED_EVENTS: ReadonlySet<string> = new Set(DECODED_EVENT_NAMES);

/** Values of the exporter's `event` label: the decoded event names, `other` and `malformed`. */
export const EVENT_LABEL_VALUES = [...DECODED_EVENT_NAMES, 'other', 'malformed'] as const;

export interface BatchCount {
  delta: LaneDelta;
  /** Jobs that failed terminally in this batch, in order; their error class is looked up next. */
  failedJobIds: string[];
  /** BullMQ's failedReason of each of them, same order (a job failed for stalling has no row). */
  failedReasons: string[];
}

export function countLaneBatch(lane: string, events: readonly DecodedLaneEvent[], labels: MetricLabels): BatchCount {
  const delta = new LaneDelta();
  const failedJobIds: string[] = [];
  const failedReasons: string[] = [];
  // Most entries of a busy lane are BullMQ's, one or two per job: their counts are summed here
  // and added once per batch.
  const processed = new Map<string, number>();
  const attempts = new AttemptTally();
  let completed = 0;
  let negativeDurations = 0;
  for (const ev of events) {
    const eventLabel = ev.event === 'other' || ev.event === 'malformed' || COUNTED_EVENTS.has(ev.event) ? ev.event : 'other';
    processed.set(eventLabel, (processed.get(eventLabel) ?? 0) + 1);
    switch (ev.event) {
      case 'added':
        delta.inc(M.enqueued, { lane, job_name: labels.jobName(ev.name) });
        break;
      case 'completed':
        completed += 1;
        break;
      case 'failed':
        failedJobIds.push(ev.jobId);
        failedReasons.push(ev.failedReason);
        break;
      case 'stalled':
        delta.inc(M.stalled, { lane });
        break;
      case LANE_EVENT.attempt: {
        const jobName = labels.jobName(ev.name);
        attempts.add(jobName, labels.tenant(ev.tenant), ev.outcome, ev.runMs, ev.waitMs);
        negativeDurations += ev.negativeDurations ?? 0;
        if (ev.outcome === 'failed') {
          const errorClass = labels.errorClass(ev.errorClass);
          delta.inc(M.attemptsFailed, { lane, error_class: errorClass });
          if (ev.willRetry) {
            delta.inc(M.retried, { lane, error_class: errorClass });
            if (ev.delayMs !== undefined) delta.observe(M.backoffDelay, { lane }, ev.delayMs / 1000);
          }
        }
        break;
      }
      case LANE_EVENT.completedAttempts:
        for (const row of ev.attempts) {
          attempts.add(labels.jobName(row.name), labels.tenant(row.tenant), 'completed', row.runMs, row.waitMs);
        }
        negativeDurations += ev.negativeDurations ?? 0;
        // Rows that did not parse are counted as malformed entries would be; the entry's others count.
        if (ev.malformedRows) processed.set('malformed', (processed.get('malformed') ?? 0) + ev.malformedRows);
        break;
      case LANE_EVENT.retryBudgetExhausted:
        delta.inc(M.budgetExhausted, { lane, action: ev.action });
        break;
      case LANE_EVENT.rejected:
        delta.inc(M.rejected, { lane, reason: ev.reason }, ev.count);
        break;
      case LANE_EVENT.dead:
        // Dead letters are counted from BullMQ's terminal `failed` event, which every dead job
        // has; bp:dead carries the reason for readers of the stream (tracing, audits).
        break;
      case LANE_EVENT.reclaimed:
        // Stalls are counted from BullMQ's `stalled` event; bp:reclaimed names the worker that
        // died, for the lifecycle event log.
        break;
      case 'other':
      case 'malformed':
        break;
    }
  }
  for (const [event, count] of processed) delta.inc(M.processed, { lane, event }, count);
  delta.inc(M.completed, { lane }, completed);
  if (negativeDurations > 0) delta.inc(M.negativeDurations, { lane }, negativeDurations);
  attempts.addTo(delta, lane);
  return { delta, failedJobIds, failedReasons };
}

type Outcome = 'completed' | 'failed';

/** One histogram series' observations within a batch: a count per bucket and their sum, in order. */
class Observations {
  readonly buckets: number[];
  sum = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.buckets = new Array<number>(bounds.length + 1).fill(0);
  }

  add(value: number): void {
    const i = bucketIndex(this.bounds, value);
    this.buckets[i] = (this.buckets[i] as number) + 1;
    this.sum += value;
  }
}

function getOrMake<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let value = map.get(key);
  if (value === undefined) {
    value = make();
    map.set(key, value);
  }
  return value;
}

/**
 * A batch's attempts (a count and the run and wait times of each), summed per series before they
 * reach the delta. The attempts of a busy lane share a handful of label sets, and building a
 * series' field for each attempt (three a job) cost the exporter more than the rest of the
 * counting. Each histogram series still sums its observations in stream order.
 */
class AttemptTally {
  /** job name → tenant → outcome → attempts. */
  private readonly counts = new Map<string, Map<string, Map<Outcome, number>>>();
  /** job name → outcome → run times (s). */
  private readonly runs = new Map<string, Map<Outcome, Observations>>();
  /** job name → wait times (s). */
  private readonly waits = new Map<string, Observations>();

  add(jobName: string, tenant: string, outcome: Outcome, runMs: number, waitMs: number): void {
    const byOutcome = getOrMake(getOrMake(this.counts, jobName, () => new Map()), tenant, () => new Map<Outcome, number>());
    byOutcome.set(outcome, (byOutcome.get(outcome) ?? 0) + 1);
    const runs = getOrMake(this.runs, jobName, () => new Map<Outcome, Observations>());
    getOrMake(runs, outcome, () => new Observations(M.runDuration.buckets ?? [])).add(runMs / 1000);
    getOrMake(this.waits, jobName, () => new Observations(M.waitDuration.buckets ?? [])).add(waitMs / 1000);
  }

  addTo(delta: LaneDelta, lane: string): void {
    for (const [jobName, byTenant] of this.counts) {
      for (const [tenant, byOutcome] of byTenant) {
        for (const [outcome, count] of byOutcome) delta.inc(M.attempts, { lane, job_name: jobName, tenant, outcome }, count);
      }
    }
    for (const [jobName, byOutcome] of this.runs) {
      for (const [outcome, seen] of byOutcome) delta.observeAll(M.runDuration, { lane, job_name: jobName, outcome }, seen.buckets, seen.sum);
    }
    for (const [jobName, seen] of this.waits) delta.observeAll(M.waitDuration, { lane, job_name: jobName }, seen.buckets, seen.sum);
  }
}

/** Adds the terminal failures of a batch, once their error classes are known. */
export function countFailures(lane: string, delta: LaneDelta, errorClasses: readonly ErrorClass[]): void {
  for (const errorClass of errorClasses) {
    delta.inc(M.failed, { lane, error_class: errorClass });
    delta.inc(M.deadLettered, { lane, error_class: errorClass });
  }
}
