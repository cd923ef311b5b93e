// The worker process's own metrics, registered from the catalogue's 'worker' and 'every-process'
// entries into a registry of its own (plus prom-client's default process metrics). Gauges are read
// from the runtime at scrape time; counters follow the runtime's events.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { Registry, type Counter } from 'prom-client';
import { INTAKE_PAUSE_REASONS, collectProcessMetrics, createMetrics, metricsOf, type MetricSet } from '@bullpen/core';
import type { WorkerEventMap } from './events';
import type { WorkerRuntime } from './runtime';

/** Sampling resolution of the event-loop delay monitor. */
const LOOP_DELAY_RESOLUTION_MS = 10;
/** A handler run this close to its timeout counts in bullpen_worker_handler_runs_near_timeout_total
 * (BullpenLaneRunTimeP99Critical alerts on their share). */
export const NEAR_TIMEOUT_SHARE = 0.8;

export class WorkerMetrics {
  readonly metrics: MetricSet;
  private readonly loopDelay: IntervalHistogram;
  private lastLoopLagSeconds = 0;
  /** The monitor's count and total delay at the previous scrape. */
  private loopWindow = { count: 0, totalNs: 0 };
  private readonly listeners: Array<() => void> = [];

  constructor(private readonly runtime: WorkerRuntime) {
    const registry = new Registry();
    collectProcessMetrics(registry);
    this.loopDelay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
    this.metrics = createMetrics(registry, metricsOf('worker', 'every-process'), {
      collectors: {
        bullpen_worker_active_handlers: (gauge) => {
          for (const [lane, stats] of Object.entries(runtime.stats().lanes)) gauge.set({ lane }, stats.activeHandlers);
        },
        bullpen_worker_concurrency_slots: (gauge) => {
          for (const [lane, stats] of Object.entries(runtime.stats().lanes)) gauge.set({ lane }, stats.concurrency);
        },
        bullpen_worker_slot_share: (gauge) => {
          for (const [lane, stats] of Object.entries(runtime.stats().lanes)) gauge.set({ lane }, stats.leaseLimit);
        },
        bullpen_worker_jobs_waiting_for_slot: (gauge) => {
          for (const [lane, stats] of Object.entries(runtime.stats().lanes)) gauge.set({ lane }, stats.waitingForSlot);
        },
        bullpen_worker_max_handlers: (gauge) => gauge.set(runtime.config.maxHandlersPerProcess),
        bullpen_worker_memory_guard_active: (gauge) => gauge.set(runtime.memoryState.paused ? 1 : 0),
        bullpen_worker_intake_paused: (gauge) => {
          for (const [lane, stats] of Object.entries(runtime.stats().lanes)) {
            for (const reason of INTAKE_PAUSE_REASONS) gauge.set({ lane, reason }, stats.intakePausedBy.includes(reason) ? 1 : 0);
          }
        },
        // Read now rather than at the guard's last sample: a scrape shows the present.
        bullpen_worker_resident_memory_bytes: (gauge) => gauge.set(process.memoryUsage.rss()),
        bullpen_worker_heap_used_bytes: (gauge) => gauge.set(process.memoryUsage().heapUsed),
        bullpen_worker_event_loop_lag_seconds: (gauge) => gauge.set(this.readLoopLag()),
      },
    });
    // Series alerts and dashboards use exist at 0 before the first event.
    const abortIgnored = this.metrics.counter('bullpen_worker_abort_ignored_total');
    const redisOom = this.metrics.counter('bullpen_worker_redis_oom_total');
    const handlerRuns = this.metrics.counter('bullpen_worker_handler_runs_total');
    const nearTimeout = this.metrics.counter('bullpen_worker_handler_runs_near_timeout_total');
    for (const lane of runtime.lanes) {
      abortIgnored.inc({ lane }, 0);
      redisOom.inc({ lane }, 0);
      handlerRuns.inc({ lane }, 0);
      nearTimeout.inc({ lane }, 0);
    }
    this.metrics.counter('bullpen_worker_event_log_errors_total').inc(0);
    this.metrics.counter('bullpen_worker_unhandled_rejections_total').inc(0);
    this.metrics.counter('bullpen_worker_event_log_dropped_lines_total').inc(0);
    this.metrics.counter('bullpen_redis_data_lost_total').inc(0);
  }

  get registry(): Registry {
    return this.metrics.registry;
  }

  /** Starts the event-loop delay monitor and follows the runtime's events. */
  start(): void {
    this.loopDelay.enable();
    const abortIgnored = this.metrics.counter('bullpen_worker_abort_ignored_total');
    const eventLogErrors = this.metrics.counter('bullpen_worker_event_log_errors_total');
    this.listen('handler:timeout-escalated', (e) => {
      // An isolated handler that ignores its signal is stopped (its thread terminated); only an
      // in-process one keeps running, and holding memory, after its attempt was failed.
      if (!e.terminated) abortIgnored.inc({ lane: e.lane });
    });
    this.listen('event-log:write-failed', (e) => eventLogErrors.inc(e.errors));
    const eventLogDropped = this.metrics.counter('bullpen_worker_event_log_dropped_lines_total');
    this.listen('event-log:lines-dropped', (e) => eventLogDropped.inc(e.lines));
    const redisOom = this.metrics.counter('bullpen_worker_redis_oom_total');
    this.listen('redis:oom-refused', (e) => redisOom.inc({ lane: e.lane }));
    const dataLost = this.metrics.counter('bullpen_redis_data_lost_total');
    this.listen('redis:data-lost', () => dataLost.inc());
    // Each attempt against its own timeout, which the run-time histogram cannot do: its buckets
    // are shared by every lane and job, and a quantile interpolated within one says nothing exact
    // about 80% of a timeout that is not a bound.
    const handlerRuns = this.metrics.counter('bullpen_worker_handler_runs_total');
    const nearTimeout = this.metrics.counter('bullpen_worker_handler_runs_near_timeout_total');
    // Once per job: each lane's series are looked up once, not hashed from labels at every run.
    const byLane = new Map<string, { runs: Counter.Internal; near: Counter.Internal }>();
    this.listen('handler:finished', (e) => {
      let series = byLane.get(e.lane);
      if (!series) {
        series = { runs: handlerRuns.labels({ lane: e.lane }), near: nearTimeout.labels({ lane: e.lane }) };
        byLane.set(e.lane, series);
      }
      series.runs.inc();
      if (e.handlerMs >= NEAR_TIMEOUT_SHARE * e.timeoutMs) series.near.inc();
    });
  }

  /** A promise rejection nothing handled (see process-faults.ts): not the runtime's, so not one of its events. */
  countUnhandledRejection(): void {
    this.metrics.counter('bullpen_worker_unhandled_rejections_total').inc();
  }

  close(): void {
    this.loopDelay.disable();
    for (const off of this.listeners.splice(0)) off();
  }

  private listen<K extends keyof WorkerEventMap>(event: K, listener: (payload: WorkerEventMap[K]) => void): void {
    this.runtime.on(event, listener);
    this.listeners.push(() => this.runtime.off(event, listener));
  }

  /** Mean event-loop delay since the previous scrape, in seconds. */
  private readLoopLag(): number {
    const { loopDelay, loopWindow } = this;
    // Never reset: the monitor drops the interval that spans a reset, so a block across a scrape
    // would be lost. The window's mean comes from the change in count and total since last time.
    const count = loopDelay.count;
    const totalNs = loopDelay.mean * count;
    // With no sample since the last scrape (two scrapes within one resolution), keep the last value.
    if (count > loopWindow.count) {
      const meanNs = (totalNs - loopWindow.totalNs) / (count - loopWindow.count);
      // The monitor's timer itself fires every `resolution` ms: that part is not lag.
      this.lastLoopLagSeconds = Math.max(0, meanNs / 1e9 - LOOP_DELAY_RESOLUTION_MS / 1000);
      this.loopWindow = { count, totalNs };
    }
    return this.lastLoopLagSeconds;
  }
}
