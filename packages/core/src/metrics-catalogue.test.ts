import { Registry } from 'prom-client';
import { METRIC_CATALOGUE, catalogueNameOf, metricsOf, type MetricDefinition } from './metrics-catalogue';
import { createMetrics } from './metrics-registry';

const all: readonly MetricDefinition[] = METRIC_CATALOGUE;

describe('the metric catalogue', () => {
  it('names every metric bullpen_<snake_case> once', () => {
    const names = all.map((d) => d.name);
    expect(new Set(names).size).toBe(names.length);
    for (const name of names) expect(name).toMatch(/^bullpen_[a-z][a-z0-9]*(_[a-z0-9]+)*$/);
  });

  it('ends counters and only counters with _total', () => {
    for (const d of all) {
      if (d.type === 'counter') expect(`${d.name} ${d.type}`).toMatch(/_total counter$/);
      else expect(`${d.name}`).not.toMatch(/_total$/);
    }
  });

  it('uses base units in names: seconds and bytes, never milli-, kilo- or minutes', () => {
    for (const d of all) {
      expect(d.name).not.toMatch(/_(ms|millis|milliseconds|us|microseconds|minutes|hours|kb|mb|gb|kilobytes|megabytes)(_|$)/);
    }
    for (const d of all.filter((d) => d.type === 'histogram')) expect(d.name).toMatch(/_(seconds|bytes)$/);
    for (const d of all.filter((d) => /duration|lag|delay|age|timestamp/.test(d.name))) expect(d.name).toMatch(/_seconds$/);
    // Not sizes: a flag (the guard holds intake) and an info gauge (which policy Redis runs).
    const sizes = all.filter((d) => /memory|heap/.test(d.name) && !/memory_guard|maxmemory_policy/.test(d.name));
    expect(sizes.length).toBeGreaterThan(0);
    for (const d of sizes) expect(d.name).toMatch(/_bytes$/);
  });

  it('has only bounded labels: no job id, request id or other per-item value', () => {
    for (const d of all) {
      for (const label of d.labelNames) {
        expect(label).toMatch(/^[a-z][a-z0-9_]*$/);
        expect(label).not.toMatch(/(^|_)(id|ids|uuid|key|message|reason_text|url|path)$/);
        expect(['le', 'quantile', 'job', 'instance']).not.toContain(label);
      }
    }
  });

  it('labels every lane-level series with lane', () => {
    for (const d of metricsOf('exporter-events', 'exporter-queue')) expect(d.labelNames).toContain('lane');
  });

  it('labels every series about a Redis primary with server', () => {
    const redis = metricsOf('exporter-redis');
    expect(redis.length).toBeGreaterThan(0);
    for (const d of redis) expect(d.labelNames).toContain('server');
  });

  it('gives every metric a sentence of help and every histogram ascending buckets in its unit', () => {
    for (const d of all) expect(d.help.length).toBeGreaterThan(15);
    for (const d of all.filter((d) => d.type === 'histogram')) {
      const buckets = d.buckets ?? [];
      expect(buckets.length).toBeGreaterThan(5);
      expect([...buckets].sort((a, b) => a - b)).toEqual(buckets);
    }
    const buckets = (name: string) => all.find((d) => d.name === name)?.buckets ?? [];
    expect(buckets('bullpen_job_run_duration_seconds')[0]).toBe(0.005);
    expect(buckets('bullpen_job_run_duration_seconds').at(-1)).toBe(1800);
    expect(buckets('bullpen_job_wait_duration_seconds').at(-1)).toBe(1800);
    expect(buckets('bullpen_job_backoff_delay_seconds')[0]).toBe(0.01);
    expect(buckets('bullpen_job_backoff_delay_seconds').at(-1)).toBe(600);
  });

  it('resolves run times finely from 10 s to 5 minutes and up to 30 minutes, and keeps the alert threshold as a bound', () => {
    const run = all.find((d) => d.name === 'bullpen_job_run_duration_seconds')?.buckets ?? [];
    // A quantile is interpolated inside its bucket: the wider the bucket, the further off it reads.
    const ratios = run.slice(1).map((bound, i) => ({ from: run[i] as number, to: bound, ratio: bound / (run[i] as number) }));
    expect(ratios.filter((r) => r.from >= 10 && r.to <= 300 && r.ratio > 1.5)).toEqual([]);
    expect(ratios.filter((r) => r.from >= 1 && r.ratio > 2)).toEqual([]);
    // Lane timeouts run well past 5 minutes; slower attempts than the last bound all read as it.
    expect(run.at(-1)).toBeGreaterThanOrEqual(1800);
    expect(run).toContain(2); // BullpenLaneRunTimeP95High: p95 above 2 s
  });

  it('holds the core series of the metrics issue under their exact names', () => {
    const names = new Set(all.map((d) => d.name));
    for (const name of [
      'bullpen_jobs_enqueued_total',
      'bullpen_jobs_completed_total',
      'bullpen_jobs_failed_total',
      'bullpen_job_attempts_failed_total',
      'bullpen_jobs_retried_total',
      'bullpen_jobs_stalled_total',
      'bullpen_job_run_duration_seconds',
      'bullpen_job_wait_duration_seconds',
      'bullpen_queue_jobs',
      'bullpen_queue_oldest_waiting_timestamp_seconds',
    ]) {
      expect(names).toContain(name);
    }
  });

  it('maps series names, including histogram parts, back to catalogue names', () => {
    expect(catalogueNameOf('bullpen_job_run_duration_seconds_bucket')).toBe('bullpen_job_run_duration_seconds');
    expect(catalogueNameOf('bullpen_job_run_duration_seconds_count')).toBe('bullpen_job_run_duration_seconds');
    expect(catalogueNameOf('bullpen_jobs_completed_total')).toBe('bullpen_jobs_completed_total');
    expect(catalogueNameOf('bullpen_jobs_completed_total_count')).toBeUndefined();
    expect(catalogueNameOf('bullpen_nope')).toBeUndefined();
  });
});

describe('createMetrics', () => {
  it('builds a subset into a registry of its own, so two processes can coexist in one test', async () => {
    const api = createMetrics(new Registry(), metricsOf('api'));
    const worker = createMetrics(new Registry(), metricsOf('worker'));
    api.counter('bullpen_api_requests_total').inc({ route: '/v1/lanes/:lane/jobs', method: 'POST', status: '201' });
    worker.gauge('bullpen_worker_active_handlers').set({ lane: 'critic' }, 2);
    const apiText = await api.registry.metrics();
    expect(apiText).toContain('bullpen_api_requests_total{route="/v1/lanes/:lane/jobs",method="POST",status="201"} 1');
    expect(apiText).not.toContain('bullpen_worker_');
    expect(await worker.registry.metrics()).toContain('bullpen_worker_active_handlers{lane="critic"} 2');
    expect(() => api.gauge('bullpen_worker_active_handlers')).toThrow(/not a registered gauge/);
  });

  it('uses the catalogue buckets for histograms', async () => {
    const api = createMetrics(new Registry(), metricsOf('api'));
    api.histogram('bullpen_api_request_duration_seconds').observe({ route: '/healthz', method: 'GET', status: '200' }, 0.003);
    const text = await api.registry.metrics();
    expect(text).toContain('le="0.001"');
    expect(text).toContain('le="10"');
    expect(text).not.toContain('le="300"');
  });

  it('runs a gauge collector at scrape time', async () => {
    let depth = 3;
    const set = createMetrics(new Registry(), metricsOf('worker'), {
      collectors: { bullpen_worker_max_handlers: (gauge) => gauge.set(depth) },
    });
    expect(await set.registry.metrics()).toContain('bullpen_worker_max_handlers 3');
    depth = 7;
    expect(await set.registry.metrics()).toContain('bullpen_worker_max_handlers 7');
  });
});
