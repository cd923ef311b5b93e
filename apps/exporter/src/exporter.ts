// The exporter process's parts, composed: the event reader that counts lane streams into persisted
// totals (and feeds the lifecycle event log when EVENT_LOG_FILE is set), the scrape-time sampler,
// the registry built from the catalogue, and the HTTP server.
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import type IORedis from 'ioredis';
import { createRedis, LifecycleLog, MetricLabels, metricsOf, type Logger } from '@bullpen/core';
import type { ExporterConfig } from './config';
import { EventLogFeed } from './event-log-feed';
import { EventReader } from './event-reader';
import { createExporterMetrics, type ExporterMetrics } from './exporter-metrics';
import { createMetricsServer } from './http-server';
import { QueueSampler } from './queue-sampler';
import { SeriesStore } from './stored-series';

export class Exporter {
  readonly store = new SeriesStore(metricsOf('exporter-events'));
  readonly metrics: ExporterMetrics;
  private readonly reader: EventReader;
  private readonly eventLog: LifecycleLog | undefined;
  private sampler: QueueSampler | undefined;
  private sampleRedis: IORedis | undefined;
  private readonly server: http.Server;

  constructor(
    private readonly config: ExporterConfig,
    private readonly logger: Logger,
  ) {
    const { core } = config;
    const labels = new MetricLabels({ jobNames: config.jobNames, tenants: config.tenants });
    if (core.eventLogFile) {
      this.eventLog = new LifecycleLog({
        file: core.eventLogFile,
        maxBytes: core.eventLogMaxBytes,
        maxFiles: core.eventLogMaxFiles,
        logger,
        onWriteFailed: ({ errors }) => this.metrics.metrics.counter('bullpen_exporter_event_log_errors_total').inc(errors),
      });
    }
    this.reader = new EventReader({
      redisUrl: core.redisUrl,
      prefix: core.prefix,
      lanes: core.laneNames,
      labels,
      store: this.store,
      logger,
      batchSize: config.batchSize,
      onLaneLoaded: (lane) => this.metrics.ensureLaneSeries(lane),
      onConflict: () => this.metrics.metrics.counter('bullpen_exporter_commit_conflicts_total').inc(),
      ...(this.eventLog ? { eventLog: new EventLogFeed(this.eventLog) } : {}),
    });
    this.metrics = createExporterMetrics({
      config: core,
      labels,
      store: this.store,
      sample: () => {
        if (!this.sampler) return Promise.reject(new Error('exporter not started'));
        return this.sampler.sample();
      },
      up: () => this.reader.up,
      position: (lane) => this.reader.position(lane),
    });
    this.server = createMetricsServer(this.metrics.registry, () => ({
      ok: this.reader.healthy,
      reading: this.reader.up,
      redis: this.sampleRedis?.status ?? 'not started',
    }));
  }

  /** Listens on EXPORTER_PORT (0 = any free port) and starts reading; resolves to the port. */
  async start(): Promise<number> {
    const { core } = this.config;
    // Scrape-time reads fail fast (about 1 s) when Redis is away, so /metrics still answers.
    this.sampleRedis = createRedis(core.redisUrl, 'producer', 'bullpen-exporter-scrape');
    this.sampler = new QueueSampler(this.sampleRedis, core.prefix, core.laneNames, (lane) => this.reader.position(lane));
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.config.core.exporterPort, this.config.core.host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.eventLog?.start();
    this.reader.start();
    return this.port;
  }

  get port(): number {
    return (this.server.address() as AddressInfo | null)?.port ?? 0;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    await this.reader.close();
    // After the reader: the lines of its last batch are written before the log closes.
    await this.eventLog?.close();
    this.sampleRedis?.disconnect();
    this.logger.debug('exporter closed');
  }
}
