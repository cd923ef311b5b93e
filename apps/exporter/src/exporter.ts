// The exporter process's parts, composed: the event reader that counts lane streams into persisted
// totals (and feeds the lifecycle event log when EVENT_LOG_FILE is set), the scrape-time sampler,
// the registry built from the catalogue, and the HTTP server. Of several exporters of one prefix
// only the holder of the leadership lease reads and serves them (leader-lease.ts); the others
// serve only bullpen_exporter_leader 0 until they take it over.
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { Registry } from 'prom-client';
import {
  createMetrics,
  createRedis,
  EvictionPolicyWatch,
  LifecycleLog,
  METRIC_CATALOGUE,
  MetricLabels,
  metricsOf,
  RedisConnectionWatch,
  RedisDataLossWatch,
  RedisHeartbeat,
  registerLanes,
  RepeatLimiter,
  type Logger,
  type RedisClient,
} from '@bullpen/core';
import type { ExporterConfig } from './config';
import { EventLogFeed } from './event-log-feed';
import { EventReader } from './event-reader';
import { createExporterMetrics, type ExporterMetrics } from './exporter-metrics';
import { createMetricsServer } from './http-server';
import { LeaderLease } from './leader-lease';
import { QueueSampler, type QueueSnapshot } from './queue-sampler';
import { START_POSITION } from './stream-loss';
import { SeriesStore } from './stored-series';

/** /healthz's `refused` field: what Redis refuses the exporter, explained, when it refuses something. */
function refusedBy(refusal: string | undefined): { refused?: string } {
  return refusal === undefined ? {} : { refused: refusal };
}

/** A reason scrapes fail is logged once, then once per this long with its count. */
export const SAMPLE_ERROR_LOG_INTERVAL_MS = 30_000;

export interface ExporterHooks {
  /** Another exporter took the lease this one held: the process should exit and stand by when restarted. */
  onLeadershipLost?(): void;
}

export class Exporter {
  readonly store = new SeriesStore(metricsOf('exporter-events'));
  readonly metrics: ExporterMetrics;
  /**
   * One reader for every lane on a single server. On a Redis Cluster one per lane: a lane's
   * stream, state and job keys share its slot, but one XREAD or pipeline cannot span slots.
   */
  private readonly readers: EventReader[];
  private readonly readerOf = new Map<string, EventReader>();
  private readonly eventLog: LifecycleLog | undefined;
  private sampler: QueueSampler | undefined;
  private sampleRedis: RedisClient | undefined;
  private heartbeat: RedisHeartbeat | undefined;
  private lease: LeaderLease | undefined;
  /** What a standby serves: that it stands by. */
  private readonly standbyRegistry = new Registry();
  private readonly server: http.Server;
  /** Why this process's connections cannot reach Redis, or what Redis refuses them, logged. */
  private readonly redisWatch: RedisConnectionWatch;
  /** Why scrapes read no queue state (bullpen_exporter_redis_up 0), each reason once per interval. */
  private readonly sampleErrorLog: RepeatLimiter;
  /** Says in the log when Redis may evict jobs: read at each (re)connect and at each scrape. */
  private readonly policies: EvictionPolicyWatch;
  private stopPolicyWatch: (() => void) | undefined;
  /** Says when Redis lost bullpen's data: read at each (re)connect, every REDIS_MARKER_CHECK_INTERVAL_MS, and when a lane's state is gone. */
  private readonly dataLoss: RedisDataLossWatch;
  private stopDataLossWatch: (() => void) | undefined;
  /** Unconfigured lanes already warned of (warnOfUnconfiguredLanes). */
  private readonly unconfiguredWarned = new Set<string>();
  private readonly labels: MetricLabels;

  constructor(
    private readonly config: ExporterConfig,
    private readonly logger: Logger,
    private readonly hooks: ExporterHooks = {},
  ) {
    const { core } = config;
    this.redisWatch = new RedisConnectionWatch({ target: core.redis, prefix: core.prefix, logger });
    this.policies = new EvictionPolicyWatch(logger);
    // A standby logs a loss too, and counts it in the registry it serves once it leads (it serves
    // no other metric while it stands by, so that a sum() over the exporters is the truth).
    this.dataLoss = new RedisDataLossWatch({
      prefix: core.prefix,
      logger,
      intervalMs: core.redisMarkerCheckIntervalMs,
      onLoss: () => {
        this.metrics.metrics.counter('bullpen_redis_data_lost_total').inc();
        // The lane registry went with the data; the leader writes it back, as when it was elected.
        if (this.leading && this.sampleRedis) void registerLanes(this.sampleRedis, core.prefix, core.laneNames, this.logger);
      },
    });
    this.sampleErrorLog = new RepeatLimiter({
      intervalMs: SAMPLE_ERROR_LOG_INTERVAL_MS,
      onRepeats: (error, repeats) =>
        logger.warn('reading the queues for /metrics failed', { error, repeats, interval_ms: SAMPLE_ERROR_LOG_INTERVAL_MS }),
    });
    const labels = new MetricLabels({ jobNames: config.jobNames, tenants: config.tenants });
    this.labels = labels;
    if (core.eventLogFile) {
      this.eventLog = new LifecycleLog({
        file: core.eventLogFile,
        maxBytes: core.eventLogMaxBytes,
        maxFiles: core.eventLogMaxFiles,
        maxBufferedLines: core.eventLogMaxBufferedLines,
        logger,
        onWriteFailed: ({ errors }) => this.metrics.metrics.counter('bullpen_exporter_event_log_errors_total').inc(errors),
        onLinesDropped: ({ lines }) => this.metrics.metrics.counter('bullpen_exporter_event_log_dropped_lines_total').inc(lines),
      });
    }
    // One feed for all readers: the log is one file whichever primary a lane lives on.
    const feed = this.eventLog ? new EventLogFeed(this.eventLog) : undefined;
    const groups = core.redis.mode === 'cluster' ? core.laneNames.map((lane) => [lane]) : [core.laneNames];
    this.readers = groups.map((lanes) => {
      const reader = new EventReader({
        redis: core.redis,
        prefix: core.prefix,
        lanes,
        labels,
        store: this.store,
        logger,
        batchSize: config.batchSize,
        onLaneLoaded: (lane) => this.metrics.ensureLaneSeries(lane),
        onConflict: () => this.metrics.metrics.counter('bullpen_exporter_commit_conflicts_total').inc(),
        // Said by the marker's watch, once however many lanes find their state gone (and also
        // after a flush, which no reconnect shows).
        onGone: () => {
          if (this.sampleRedis) void this.dataLoss.check(this.sampleRedis);
        },
        access: this.redisWatch,
        ...(feed ? { eventLog: feed } : {}),
      });
      for (const lane of lanes) this.readerOf.set(lane, reader);
      return reader;
    });
    this.metrics = createExporterMetrics({
      config: core,
      labels,
      store: this.store,
      sample: async () => {
        if (!this.sampler) throw new Error('exporter not started');
        const snapshot = await this.sampler.sample();
        this.warnOfUnconfiguredLanes(snapshot);
        for (const { address, memory } of snapshot.servers) this.policies.observe(address, memory.policy);
        return snapshot;
      },
      loaded: () => this.readers.every((r) => r.loaded),
      up: () => this.readers.every((r) => r.up),
      leading: () => this.leading,
      position: (lane) => this.position(lane),
    });
    createMetrics(
      this.standbyRegistry,
      METRIC_CATALOGUE.filter((def) => def.name === 'bullpen_exporter_leader'),
    ).gauge('bullpen_exporter_leader').set(0);
    this.server = createMetricsServer(
      () => (this.leading ? this.metrics.registry : this.standbyRegistry),
      () => {
        const redis = this.sampleRedis?.status ?? 'not started';
        // A refusal is not a reason to restart the process (ok): it goes on by itself once granted.
        if (!this.leading) return { ok: true, role: 'standby', reading: false, redis, ...refusedBy(this.lease?.refusal) };
        return {
          ok: this.readers.every((r) => r.healthy),
          role: 'leader',
          reading: this.readers.every((r) => r.up),
          redis,
          ...refusedBy(this.readers.find((r) => r.refusal !== undefined)?.refusal),
        };
      },
    );
  }

  /**
   * The tenants counted under a `tenant` label of their own from now on (API_KEYS_FILE reloaded);
   * attempts already counted keep the label they got. No tenant series is created ahead of events.
   */
  replaceTenants(tenants: readonly string[]): void {
    this.labels.replaceTenants(tenants);
  }

  /** Whether this exporter holds the leadership lease (and so reads and serves). */
  get leading(): boolean {
    return this.lease?.leading ?? false;
  }

  /** Listens on EXPORTER_PORT (0 = any free port) and asks for the lead, reading once it holds it; resolves to the port. */
  async start(): Promise<number> {
    const { core } = this.config;
    // Scrape-time reads fail fast (about 1 s) when Redis is away, so /metrics still answers.
    this.sampleRedis = createRedis(core.redis, 'producer', 'bullpen-exporter-scrape');
    this.redisWatch.watch(this.sampleRedis);
    // Fail-fast like the API's, and idle between scrapes and lease renewals: kept open below
    // Redis's idle timeout, so that neither meets it closed (redis-heartbeat.ts).
    this.heartbeat = new RedisHeartbeat(this.sampleRedis).start();
    // Standbys too: each exporter process says what it finds.
    this.stopPolicyWatch = this.policies.watchConnection(this.sampleRedis);
    this.stopDataLossWatch = this.dataLoss.watchConnection(this.sampleRedis);
    this.sampler = new QueueSampler(
      this.sampleRedis,
      core.prefix,
      core.laneNames,
      (lane) => this.position(lane),
      (err) => this.onSampleError(err),
    );
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.config.core.exporterPort, this.config.core.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.lease = new LeaderLease({
      redis: this.sampleRedis,
      prefix: core.prefix,
      id: `${os.hostname()}:${process.pid}`,
      leaseMs: this.config.leaderLeaseMs,
      logger: this.logger,
      access: this.redisWatch,
      onElected: () => {
        void registerLanes(this.sampleRedis!, core.prefix, core.laneNames, this.logger);
        this.eventLog?.start();
        for (const reader of this.readers) reader.start();
      },
      onLost: () => {
        this.logger.error('another exporter took the leadership lease: this one stops serving');
        this.hooks.onLeadershipLost?.();
      },
    });
    this.lease.start();
    return this.port;
  }

  /**
   * Jobs left in a lane the lanes file no longer names (renamed, or dropped while jobs waited):
   * nothing of this deployment serves or shows them but bullpen_unconfigured_lane_jobs. Said once
   * per lane and process.
   */
  private warnOfUnconfiguredLanes(snapshot: QueueSnapshot): void {
    for (const [lane, jobs] of snapshot.unconfigured) {
      if (this.unconfiguredWarned.has(lane)) continue;
      this.unconfiguredWarned.add(lane);
      const held = Object.fromEntries(Object.entries(jobs).filter(([state, n]) => state !== 'completed' && n > 0));
      this.logger.warn(`lane ${lane} holds jobs but is not in LANES_FILE: no worker sharing this lanes file takes them`, { lane, jobs: held });
    }
  }

  /** A scrape read no queue state: says why, as the gauges only say that it failed. */
  private onSampleError(err: unknown): void {
    if (this.redisWatch.handled(err)) return;
    const message = (err as Error)?.message ?? String(err);
    if (this.sampleErrorLog.admit(message)) this.logger.warn('reading the queues for /metrics failed', { error: message });
  }

  private position(lane: string): string {
    return this.readerOf.get(lane)?.position(lane) ?? START_POSITION;
  }

  get port(): number {
    return (this.server.address() as AddressInfo | null)?.port ?? 0;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    // Released first, so that a standby takes over at its next try; a batch still being
    // committed here meanwhile is safe, as commits are conditional on the saved position.
    await this.lease?.close();
    await Promise.all(this.readers.map((r) => r.close()));
    // After the readers: the lines of their last batches are written before the log closes.
    await this.eventLog?.close();
    await this.heartbeat?.close();
    this.stopPolicyWatch?.();
    this.stopDataLossWatch?.();
    this.sampleRedis?.disconnect();
    this.sampleErrorLog.close();
    this.redisWatch.close();
    this.logger.debug('exporter closed');
  }
}
