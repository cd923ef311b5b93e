// Every Prometheus metric bullpen exports, in one typed list. The exporter, the API and the
// workers register from it (metrics-registry.ts); dashboards and rules are checked against it.
import { ERROR_CLASSES } from './errors';

export type MetricType = 'counter' | 'gauge' | 'histogram';

/** Which process registers a metric, and how the exporter produces it. */
export type MetricOrigin =
  /** Exporter: counted from lane event streams, totals (and the time of the last loss) persisted in Redis across restarts. */
  | 'exporter-events'
  /** Exporter: read from Redis at scrape time. */
  | 'exporter-queue'
  /** Exporter: about each Redis primary (label `server`), read at scrape time. */
  | 'exporter-redis'
  /** Exporter: about the exporter itself. */
  | 'exporter-self'
  | 'api'
  | 'worker'
  /** Every process (API, workers, exporter): what each one finds of Redis through its own connection. */
  | 'every-process';

export interface MetricDefinition {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string;
  readonly labelNames: readonly string[];
  /** Histograms only: upper bounds in the metric's base unit, ascending. */
  readonly buckets?: readonly number[];
  readonly origin: MetricOrigin;
}

/**
 * Job run time per attempt: 5 ms … 30 minutes, as lane timeouts go well past 5 minutes. From 10 s
 * up neighbouring bounds are at most 1.5× apart, as a quantile is interpolated within a bucket (a
 * lane of 20 s jobs read p99 29 s between 10 and 30). 2 s is a bound, as the p95 alert uses it.
 * Each bound is a series per lane, job name and outcome.
 */
export const RUN_DURATION_BUCKETS_SECONDS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 2.5, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 600, 900, 1800,
] as const;
/** Time from eligible to started: 5 ms … 30 minutes. */
export const WAIT_DURATION_BUCKETS_SECONDS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800,
] as const;
/** Backoff chosen before a retry: 10 ms … 10 minutes. */
export const BACKOFF_DELAY_BUCKETS_SECONDS = [
  0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600,
] as const;
/** API request handling: 1 ms … 10 s. */
export const HTTP_DURATION_BUCKETS_SECONDS = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const;

/** Values of the `state` label of bullpen_queue_jobs: BullMQ's job states. */
export const QUEUE_JOB_STATES = [
  'waiting',
  'paused',
  'delayed',
  'prioritized',
  'active',
  'completed',
  'failed',
  'waiting-children',
] as const;
export type QueueJobState = (typeof QUEUE_JOB_STATES)[number];

/** Values of the `outcome` label. */
export const ATTEMPT_OUTCOMES = ['completed', 'failed'] as const;
/** Values of the `action` label of bullpen_retry_budget_exhausted_total. */
export const RETRY_BUDGET_ACTIONS = ['defer', 'fail'] as const;
/** Values of the `reason` label of rejection counters. */
export const REJECTION_REASONS = ['queue_full'] as const;
/** Values of the `reason` label of bullpen_worker_intake_paused: what holds a lane's intake. */
export const INTAKE_PAUSE_REASONS = ['memory_guard', 'redis_oom'] as const;
export type IntakePauseReason = (typeof INTAKE_PAUSE_REASONS)[number];
/** Every bounded label value set, for pre-initialising series and for tests. */
export const METRIC_ERROR_CLASSES = ERROR_CLASSES;

export const METRIC_CATALOGUE = [
  // ── Exporter: counted from the lane event streams ────────────────────────────────────────
  {
    name: 'bullpen_jobs_enqueued_total',
    type: 'counter',
    help: 'Jobs added to the lane (BullMQ added events), by job name.',
    labelNames: ['lane', 'job_name'],
    origin: 'exporter-events',
  },
  {
    name: 'bullpen_jobs_completed_total',
    type: 'counter',
    help: 'Jobs that completed successfully (BullMQ completed events).',
    labelNames: ['lane'],
    origin: 'exporter-events',
  },
  {
    name: 'bullpen_jobs_failed_total',
    type: 'counter',
    help: 'Jobs that failed terminally, with no retry to follow, by the error class of their last attempt.',
    labelNames: ['lane', 'error_class'],
    origin: 'exporter-events',
  },
  {
    name: 'bullpen_jobs_dead_lettered_total',
    type: 'counter',
    help: 'Jobs moved to the dead letters (the lane failed set with their attempt history), by error class of the last attempt.',
    labelNames: ['lane', 'error_class'],
    origin: 'exporter-events',
  },
  {
    name: 'bullpen_job_attempts_total',
    type: 'counter',
    help: 'Attempts that finished, by job name, tenant and outcome.',
    labelNames: ['lane', 'job_name', 'tenant', 'outcome'],
    origin: 'exporter-events',
  },
  {
    name: 'bullpen_job_attempts_failed_total',
    type: 'counter',
    help: 'Attempts that failed, retried or not, by error class.',
    labelNames: ['lane', 'error_class'],
    origin: 'exporter-events',
  },
  {
    name: 'bullpen_jobs_retried_total',
    type: 'counter',
    help: 'Failed attempts after which a retry was scheduled, by error class.',
    labelNames: ['lane', 'error_class'],
    origin: 'exporter-events',
  },
  {
    name: 'bullpen_jobs_stalled_total',
    type: 'counter',
    help: 'Jobs whose lock expired while active (worker died or blocked) and that were moved back to wait.',
    labelNames: ['lane'],
    origin: 'exporter-events',
  },
  {
    name: 'bullpen_retry_budget_exhausted_total',
    type: 'counter',
    help: 'Retries refused by the lane retry budget, by what was done instead (defer or fail).',
    labelNames: ['lane', 'action'],
    origin: 'exporter-events',
  },
  {
    name: 'bullpen_jobs_rejected_total',
    type: 'counter',
    help: 'Submissions the API refused at admission, by reason (published by the API to the lane stream).',
    labelNames: ['lane', 'reason'],
    origin: 'exporter-events',
  },
  {
    name: 'bullpen_job_run_duration_seconds',
    type: 'histogram',
    help: 'Run time of one attempt, from start to completion or failure.',
    labelNames: ['lane', 'job_name', 'outcome'],
    buckets: RUN_DURATION_BUCKETS_SECONDS,
    origin: 'exporter-events',
  },
  {
    name: 'bullpen_job_wait_duration_seconds',
    type: 'histogram',
    help: 'Time an attempt waited between becoming eligible to run and starting.',
    labelNames: ['lane', 'job_name'],
    buckets: WAIT_DURATION_BUCKETS_SECONDS,
    origin: 'exporter-events',
  },
  {
    name: 'bullpen_job_backoff_delay_seconds',
    type: 'histogram',
    help: 'Backoff delay chosen before a retry.',
    labelNames: ['lane'],
    buckets: BACKOFF_DELAY_BUCKETS_SECONDS,
    origin: 'exporter-events',
  },
  {
    name: 'bullpen_exporter_events_processed_total',
    type: 'counter',
    help: 'Lane stream entries the exporter has counted, by event name; malformed also counts the rows of bp:completed_attempts entries left out for not parsing.',
    labelNames: ['lane', 'event'],
    origin: 'exporter-events',
  },
  {
    name: 'bullpen_exporter_negative_timings_total',
    type: 'counter',
    help: "Attempt run and wait times read from the lane stream as negative (the worker's wall clock stepped back while it timed them) and counted as 0.",
    labelNames: ['lane'],
    origin: 'exporter-events',
  },
  {
    name: 'bullpen_exporter_events_lost_total',
    type: 'counter',
    help: 'Lane stream entries trimmed before the exporter read them; totals undercount by this much.',
    labelNames: ['lane'],
    origin: 'exporter-events',
  },
  {
    // The counter alone cannot alert on a loss found at start after a long outage, or by an
    // exporter under a new instance: its rise happens before its first scrape.
    name: 'bullpen_exporter_events_lost_last_timestamp_seconds',
    type: 'gauge',
    help: 'Time (Unix seconds, Redis clock) the exporter last found lane stream entries trimmed before it read them; 0 before any.',
    labelNames: ['lane'],
    origin: 'exporter-events',
  },

  // ── Exporter: read from Redis at scrape time ─────────────────────────────────────────────
  {
    name: 'bullpen_queue_jobs',
    type: 'gauge',
    help: 'Jobs in the lane by BullMQ state.',
    labelNames: ['lane', 'state'],
    origin: 'exporter-queue',
  },
  {
    name: 'bullpen_queue_oldest_waiting_timestamp_seconds',
    type: 'gauge',
    help: 'When the job next in line that waits longest became eligible to run (Unix seconds): its enqueue plus its delay, the end of the backoff after its last failed attempt, or its redrive from the dead letters, whichever is latest; 0 when nothing waits.',
    labelNames: ['lane'],
    origin: 'exporter-queue',
  },
  {
    name: 'bullpen_queue_paused',
    type: 'gauge',
    help: '1 when the lane is paused, else 0.',
    labelNames: ['lane'],
    origin: 'exporter-queue',
  },
  {
    name: 'bullpen_queue_workers',
    type: 'gauge',
    help: 'Worker connections serving the lane (BullMQ named blocking connections).',
    labelNames: ['lane'],
    origin: 'exporter-queue',
  },
  {
    name: 'bullpen_unconfigured_lane_jobs',
    type: 'gauge',
    help:
      'Jobs by state (completed aside) in a lane that an app of this prefix once served but the exporter\'s lanes file ' +
      'does not name: no worker that shares the file takes them, and no other metric shows them. Absent for empty lanes.',
    labelNames: ['lane', 'state'],
    origin: 'exporter-queue',
  },
  {
    name: 'bullpen_lane_concurrency',
    type: 'gauge',
    help: 'Configured handlers of the lane per worker process.',
    labelNames: ['lane'],
    origin: 'exporter-queue',
  },
  {
    name: 'bullpen_lane_global_concurrency',
    type: 'gauge',
    help: 'Configured cluster-wide cap of the lane; absent when the lane has none.',
    labelNames: ['lane'],
    origin: 'exporter-queue',
  },
  {
    name: 'bullpen_lane_max_queue_size',
    type: 'gauge',
    help: 'Configured admission limit of the lane (jobs not yet started).',
    labelNames: ['lane'],
    origin: 'exporter-queue',
  },
  {
    name: 'bullpen_lane_timeout_seconds',
    type: 'gauge',
    help: 'Configured per-attempt timeout of the lane (timeoutMs), which applies to every job that does not set its own.',
    labelNames: ['lane'],
    origin: 'exporter-queue',
  },

  // ── Exporter: Redis itself, read at scrape time (INFO memory of each primary) ───────────
  {
    name: 'bullpen_redis_memory_used_bytes',
    type: 'gauge',
    help: 'Memory Redis uses (used_memory), the figure it compares with maxmemory, per primary.',
    labelNames: ['server'],
    origin: 'exporter-redis',
  },
  {
    name: 'bullpen_redis_memory_max_bytes',
    type: 'gauge',
    help: 'Memory limit of Redis (maxmemory) per primary; 0 when it has none.',
    labelNames: ['server'],
    origin: 'exporter-redis',
  },
  {
    name: 'bullpen_redis_maxmemory_policy',
    type: 'gauge',
    help: 'What Redis does at its memory limit (maxmemory-policy), per primary: 1 for the current policy. bullpen needs noeviction.',
    labelNames: ['server', 'policy'],
    origin: 'exporter-redis',
  },

  // ── Exporter: itself ─────────────────────────────────────────────────────────────────────
  {
    name: 'bullpen_exporter_up',
    type: 'gauge',
    help: '1 when the exporter has loaded its state and is reading the lane streams, else 0.',
    labelNames: [],
    origin: 'exporter-self',
  },
  {
    name: 'bullpen_exporter_leader',
    type: 'gauge',
    help: '1 on the exporter that holds the leadership lease and serves the job metrics, 0 on one standing by.',
    labelNames: [],
    origin: 'exporter-self',
  },
  {
    name: 'bullpen_exporter_redis_up',
    type: 'gauge',
    help: '1 when the last scrape could read Redis, else 0.',
    labelNames: [],
    origin: 'exporter-self',
  },
  {
    name: 'bullpen_exporter_event_lag_seconds',
    type: 'gauge',
    help: 'Age of the oldest lane stream entry not yet counted; 0 when the exporter is caught up.',
    labelNames: ['lane'],
    origin: 'exporter-self',
  },
  {
    name: 'bullpen_exporter_last_event_timestamp_seconds',
    type: 'gauge',
    help: 'Time (Unix seconds, from the stream id) of the last lane stream entry counted; 0 before any.',
    labelNames: ['lane'],
    origin: 'exporter-self',
  },
  {
    name: 'bullpen_exporter_scrape_duration_seconds',
    type: 'gauge',
    help: 'How long reading the scrape-time gauges from Redis took in the last scrape.',
    labelNames: [],
    origin: 'exporter-self',
  },
  {
    name: 'bullpen_exporter_commit_conflicts_total',
    type: 'counter',
    help: 'Batches not committed because another exporter moved the saved position first (state reloaded).',
    labelNames: [],
    origin: 'exporter-self',
  },
  {
    name: 'bullpen_exporter_event_log_errors_total',
    type: 'counter',
    help: 'Failed writes of the exporter\'s lifecycle event log (disk full, permission denied); their lines are dropped and counting goes on.',
    labelNames: [],
    origin: 'exporter-self',
  },
  {
    name: 'bullpen_exporter_event_log_dropped_lines_total',
    type: 'counter',
    help: 'Lines the exporter\'s lifecycle event log dropped: their write failed, or they found its write buffer full (a slow or stuck disk); counting goes on.',
    labelNames: [],
    origin: 'exporter-self',
  },

  // ── API process ──────────────────────────────────────────────────────────────────────────
  {
    name: 'bullpen_api_requests_total',
    type: 'counter',
    help: 'HTTP requests handled, by route template, method (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS or other) and status code; status 499 is a request whose client closed the connection before the whole response was sent.',
    labelNames: ['route', 'method', 'status'],
    origin: 'api',
  },
  {
    name: 'bullpen_api_request_duration_seconds',
    type: 'histogram',
    help: 'HTTP request handling time, by route template, method (GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS or other) and status code (499: until the client closed the connection).',
    labelNames: ['route', 'method', 'status'],
    buckets: HTTP_DURATION_BUCKETS_SECONDS,
    origin: 'api',
  },
  {
    name: 'bullpen_api_admission_rejected_total',
    type: 'counter',
    help: 'Jobs refused at admission by this API process, by lane and reason (queue_full, api_overloaded, redis_full).',
    labelNames: ['lane', 'reason'],
    origin: 'api',
  },
  {
    name: 'bullpen_api_jobs_in_flight',
    type: 'gauge',
    help: 'Jobs this API process has on their way to Redis now (admission and add; a dead letter being redriven or purged counts as five), at most API_MAX_INFLIGHT_JOBS.',
    labelNames: [],
    origin: 'api',
  },
  {
    name: 'bullpen_api_submissions_waiting',
    type: 'gauge',
    help: 'Submissions (and batches of dead-letter redrives and purges) waiting in this API process for room among the jobs on their way to Redis.',
    labelNames: [],
    origin: 'api',
  },

  // ── Worker process ───────────────────────────────────────────────────────────────────────
  {
    name: 'bullpen_worker_active_handlers',
    type: 'gauge',
    help: 'Handlers running now in this worker process, by lane.',
    labelNames: ['lane'],
    origin: 'worker',
  },
  {
    name: 'bullpen_worker_concurrency_slots',
    type: 'gauge',
    help: 'Concurrency slots of the lane in this worker process.',
    labelNames: ['lane'],
    origin: 'worker',
  },
  {
    name: 'bullpen_worker_slot_share',
    type: 'gauge',
    help: 'Jobs the lane may hold now in this worker process: its share of the process-wide handler cap, at most its concurrency.',
    labelNames: ['lane'],
    origin: 'worker',
  },
  {
    name: 'bullpen_worker_jobs_waiting_for_slot',
    type: 'gauge',
    help: 'Jobs of the lane this worker process has leased that wait for a handler slot; above 0 only while the process serves more lanes than it has slots.',
    labelNames: ['lane'],
    origin: 'worker',
  },
  {
    name: 'bullpen_worker_max_handlers',
    type: 'gauge',
    help: 'Process-wide cap on handlers running at once in this worker process.',
    labelNames: [],
    origin: 'worker',
  },
  {
    name: 'bullpen_worker_memory_guard_active',
    type: 'gauge',
    help: '1 while the memory guard holds intake (RSS over the limit), else 0.',
    labelNames: [],
    origin: 'worker',
  },
  {
    name: 'bullpen_worker_resident_memory_bytes',
    type: 'gauge',
    help: 'Resident set size of this worker process.',
    labelNames: [],
    origin: 'worker',
  },
  {
    name: 'bullpen_worker_heap_used_bytes',
    type: 'gauge',
    help: 'V8 heap in use in this worker process.',
    labelNames: [],
    origin: 'worker',
  },
  {
    name: 'bullpen_worker_event_loop_lag_seconds',
    type: 'gauge',
    help: 'Event loop delay of this worker process (recent mean).',
    labelNames: [],
    origin: 'worker',
  },
  {
    name: 'bullpen_worker_handler_runs_total',
    type: 'counter',
    help: 'Handler runs of the lane that ended in this worker process: attempts whose handler started, however they ended.',
    labelNames: ['lane'],
    origin: 'worker',
  },
  {
    name: 'bullpen_worker_handler_runs_near_timeout_total',
    type: 'counter',
    help: "Handler runs of the lane that took at least 80% of their attempt's timeout (the job's own timeoutMs, else the lane's), those its timeout cut off included.",
    labelNames: ['lane'],
    origin: 'worker',
  },
  {
    name: 'bullpen_worker_abort_ignored_total',
    type: 'counter',
    help: 'Attempts whose in-process handler kept running past the hard timeout after its abort signal fired.',
    labelNames: ['lane'],
    origin: 'worker',
  },
  {
    name: 'bullpen_worker_unhandled_rejections_total',
    type: 'counter',
    help: 'Promise rejections that nothing handled in this worker process, most likely a promise a handler neither awaited nor caught; each is logged and the worker goes on.',
    labelNames: [],
    origin: 'worker',
  },
  {
    name: 'bullpen_worker_event_log_errors_total',
    type: 'counter',
    help: 'Failed writes of the lifecycle event log (disk full, permission denied); their lines are dropped and jobs go on.',
    labelNames: [],
    origin: 'worker',
  },
  {
    name: 'bullpen_worker_event_log_dropped_lines_total',
    type: 'counter',
    help: 'Lines the lifecycle event log dropped: their write failed, or they found its write buffer full (a slow or stuck disk); jobs go on.',
    labelNames: [],
    origin: 'worker',
  },
  {
    name: 'bullpen_worker_redis_oom_total',
    type: 'counter',
    help: 'Writes of the lane that Redis refused because it is at maxmemory (OOM); each one pauses or keeps pausing the lane\'s intake.',
    labelNames: ['lane'],
    origin: 'worker',
  },
  {
    name: 'bullpen_worker_intake_paused',
    type: 'gauge',
    help: '1 while the lane takes no new jobs in this worker process for the reason (memory_guard, redis_oom), else 0.',
    labelNames: ['lane', 'reason'],
    origin: 'worker',
  },

  // ── Every process ────────────────────────────────────────────────────────────────────────
  {
    name: 'bullpen_redis_data_lost_total',
    type: 'counter',
    help: "Times this process found that Redis lost bullpen's data (restarted without persistence, flushed, failed over to a replica without it): its marker key was gone or replaced when read again (at each reconnect and every REDIS_MARKER_CHECK_INTERVAL_MS; the exporter also when a lane's saved state is gone). Jobs acknowledged before may be gone.",
    labelNames: [],
    origin: 'every-process',
  },
] as const satisfies readonly MetricDefinition[];

type Catalogue = (typeof METRIC_CATALOGUE)[number];
export type MetricName = Catalogue['name'];
export type CounterName = Extract<Catalogue, { type: 'counter' }>['name'];
export type GaugeName = Extract<Catalogue, { type: 'gauge' }>['name'];
export type HistogramName = Extract<Catalogue, { type: 'histogram' }>['name'];

const BY_NAME: ReadonlyMap<string, MetricDefinition> = new Map(METRIC_CATALOGUE.map((d) => [d.name, d]));

export function metricDefinition(name: string): MetricDefinition | undefined {
  return BY_NAME.get(name);
}

/** The definitions one process (or one part of the exporter) registers. */
export function metricsOf(...origins: MetricOrigin[]): MetricDefinition[] {
  return METRIC_CATALOGUE.filter((d) => origins.includes(d.origin));
}

/**
 * The catalogue name a Prometheus series name belongs to: itself, or for histograms the base of
 * `_bucket`, `_sum` and `_count`. Undefined when not in the catalogue.
 */
export function catalogueNameOf(seriesName: string): string | undefined {
  if (BY_NAME.has(seriesName)) return seriesName;
  const base = seriesName.replace(/_(bucket|sum|count)$/, '');
  return BY_NAME.get(base)?.type === 'histogram' ? base : undefined;
}
