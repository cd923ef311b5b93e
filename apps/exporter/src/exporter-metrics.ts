// The exporter's registry, built from the catalogue: event-derived counters and histograms served
// from the persisted totals (stored-series.ts), and gauges read at scrape time (queue-sampler.ts):
// the lanes' state and each Redis primary's memory.
import { Registry, type Gauge, type Metric } from 'prom-client';
import {
  createMetrics,
  METRIC_ERROR_CLASSES,
  metricsOf,
  QUEUE_JOB_STATES,
  REJECTION_REASONS,
  RETRY_BUDGET_ACTIONS,
  type BullpenConfig,
  type MetricDefinition,
  type MetricLabels,
  type MetricSet,
} from '@bullpen/core';
import { EVENT_METRICS } from './event-counting';
import type { QueueSnapshot, ServerSnapshot } from './queue-sampler';
import type { SeriesStore } from './stored-series';
import { streamIdTimeMs } from './stream-loss';

/**
 * A metric whose values come from the persisted totals. prom-client cannot load a histogram's
 * buckets from storage, so these are served through the registry's `get()` contract directly.
 * The one gauge among them is the time of the last loss, persisted with the loss's commit.
 */
class StoredMetricView {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  readonly aggregator = 'sum' as const;

  constructor(
    def: MetricDefinition,
    private readonly store: SeriesStore,
    private readonly ready: () => boolean,
  ) {
    this.name = def.name;
    this.help = def.help;
    this.type = def.type;
  }

  async get() {
    // Before the saved totals are loaded, export nothing rather than zeros that would jump.
    const values = this.ready() ? this.store.values(this.name) : [];
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    // Totals belong to Redis; a registry reset does not clear them.
  }
}

export interface ExporterMetricsOptions {
  config: BullpenConfig;
  labels: MetricLabels;
  store: SeriesStore;
  /** A scrape-time snapshot of the lanes (shared by the gauges of one scrape). */
  sample: () => Promise<QueueSnapshot>;
  /** Whether the saved totals are loaded, to be served (also while Redis refuses reading on from them). */
  loaded: () => boolean;
  /** Whether the saved totals are loaded and the streams being read. */
  up: () => boolean;
  /** Whether this exporter holds the leadership lease. */
  leading: () => boolean;
  /** The stream position a lane is counted up to. */
  position: (lane: string) => string;
}

export interface ExporterMetrics {
  registry: Registry;
  metrics: MetricSet;
  /** Puts every series alerts rely on at 0 for a lane whose state was just loaded. */
  ensureLaneSeries(lane: string): void;
}

export function createExporterMetrics(options: ExporterMetricsOptions): ExporterMetrics {
  const { config, labels, store } = options;
  const registry = new Registry();
  for (const def of metricsOf('exporter-events')) {
    registry.registerMetric(new StoredMetricView(def, store, options.loaded) as unknown as Metric);
  }

  let lastSample: { ok: true; snapshot: QueueSnapshot } | { ok: false } = { ok: false };
  const sample = async (): Promise<QueueSnapshot | undefined> => {
    try {
      const snapshot = await options.sample();
      lastSample = { ok: true, snapshot };
      return snapshot;
    } catch {
      lastSample = { ok: false };
      return undefined;
    }
  };
  /**
   * A collector that sets a gauge from the snapshot, or clears it when Redis is away. Cleared
   * first either way, so that a series that is no longer true (a policy Redis left) goes stale.
   */
  const fromSnapshot =
    (set: (gauge: Gauge<string>, snapshot: QueueSnapshot) => void) => async (gauge: Gauge<string>) => {
      const snapshot = await sample();
      gauge.reset();
      if (snapshot) set(gauge, snapshot);
    };
  const perLane = (set: (gauge: Gauge<string>, lane: string, snapshot: QueueSnapshot) => void) =>
    fromSnapshot((gauge, snapshot) => {
      for (const lane of config.laneNames) set(gauge, lane, snapshot);
    });
  const perServer = (set: (gauge: Gauge<string>, server: ServerSnapshot) => void) =>
    fromSnapshot((gauge, snapshot) => {
      for (const server of snapshot.servers) set(gauge, server);
    });
  const laneOf = (snapshot: QueueSnapshot, lane: string) => snapshot.lanes.get(lane);

  const metrics = createMetrics(registry, metricsOf('exporter-queue', 'exporter-redis', 'exporter-self', 'every-process'), {
    collectors: {
      bullpen_queue_jobs: perLane((gauge, lane, snapshot) => {
        const s = laneOf(snapshot, lane);
        if (s) for (const state of QUEUE_JOB_STATES) gauge.set({ lane, state }, s.jobs[state]);
      }),
      bullpen_queue_oldest_waiting_timestamp_seconds: perLane((gauge, lane, snapshot) => {
        const s = laneOf(snapshot, lane);
        if (s) gauge.set({ lane }, s.oldestWaitingMs / 1000);
      }),
      bullpen_queue_paused: perLane((gauge, lane, snapshot) => {
        const s = laneOf(snapshot, lane);
        if (s) gauge.set({ lane }, s.paused ? 1 : 0);
      }),
      bullpen_queue_workers: perLane((gauge, lane, snapshot) => {
        const s = laneOf(snapshot, lane);
        if (s) gauge.set({ lane }, s.workers);
      }),
      bullpen_unconfigured_lane_jobs: fromSnapshot((gauge, snapshot) => {
        for (const [lane, jobs] of snapshot.unconfigured) {
          for (const state of QUEUE_JOB_STATES) if (state !== 'completed') gauge.set({ lane, state }, jobs[state]);
        }
      }),
      // Both times are the lane's Redis's: a skewed exporter clock neither fakes a lag nor hides one.
      bullpen_exporter_event_lag_seconds: perLane((gauge, lane, snapshot) => {
        const s = laneOf(snapshot, lane);
        const unread = s?.firstUnreadId;
        gauge.set({ lane }, s && unread ? Math.max(0, s.redisTimeMs - streamIdTimeMs(unread)) / 1000 : 0);
      }),
      bullpen_redis_memory_used_bytes: perServer((gauge, { address, memory }) => gauge.set({ server: address }, memory.usedBytes)),
      bullpen_redis_memory_max_bytes: perServer((gauge, { address, memory }) => gauge.set({ server: address }, memory.maxBytes)),
      bullpen_redis_maxmemory_policy: perServer((gauge, { address, memory }) => gauge.set({ server: address, policy: memory.policy }, 1)),
      bullpen_exporter_redis_up: async (gauge) => {
        gauge.set((await sample()) ? 1 : 0);
      },
      bullpen_exporter_scrape_duration_seconds: async (gauge) => {
        await sample();
        gauge.reset();
        if (lastSample.ok) gauge.set(lastSample.snapshot.durationSeconds);
      },
      bullpen_exporter_up: (gauge) => {
        gauge.set(options.up() ? 1 : 0);
      },
      bullpen_exporter_leader: (gauge) => {
        gauge.set(options.leading() ? 1 : 0);
      },
      bullpen_exporter_last_event_timestamp_seconds: (gauge) => {
        gauge.reset();
        if (!options.loaded()) return;
        for (const lane of config.laneNames) gauge.set({ lane }, streamIdTimeMs(options.position(lane)) / 1000);
      },
    },
  });

  // Lane limits are configuration: set once, for saturation ratios and the run-time alert.
  for (const lane of config.laneNames) {
    const policy = config.lanes[lane];
    if (!policy) continue;
    metrics.gauge('bullpen_lane_concurrency').set({ lane }, policy.concurrency);
    metrics.gauge('bullpen_lane_max_queue_size').set({ lane }, policy.maxQueueSize);
    metrics.gauge('bullpen_lane_timeout_seconds').set({ lane }, policy.timeoutMs / 1000);
    if (policy.globalConcurrency !== undefined) {
      metrics.gauge('bullpen_lane_global_concurrency').set({ lane }, policy.globalConcurrency);
    }
  }
  metrics.counter('bullpen_exporter_commit_conflicts_total').inc(0);
  metrics.counter('bullpen_exporter_event_log_errors_total').inc(0);
  metrics.counter('bullpen_exporter_event_log_dropped_lines_total').inc(0);
  metrics.counter('bullpen_redis_data_lost_total').inc(0);

  const ensureLaneSeries = (lane: string): void => {
    const M = EVENT_METRICS;
    store.ensure(lane, M.completed, { lane });
    store.ensure(lane, M.stalled, { lane });
    store.ensure(lane, M.lost, { lane });
    store.ensure(lane, M.lostAt, { lane });
    store.ensure(lane, M.negativeDurations, { lane });
    for (const jobName of labels.jobNameValues()) store.ensure(lane, M.enqueued, { lane, job_name: jobName });
    for (const errorClass of METRIC_ERROR_CLASSES) {
      for (const def of [M.failed, M.deadLettered, M.attemptsFailed, M.retried]) {
        store.ensure(lane, def, { lane, error_class: errorClass });
      }
    }
    for (const action of RETRY_BUDGET_ACTIONS) store.ensure(lane, M.budgetExhausted, { lane, action });
    for (const reason of REJECTION_REASONS) store.ensure(lane, M.rejected, { lane, reason });
  };

  return { registry, metrics, ensureLaneSeries };
}
