// Builds prom-client metrics from catalogue definitions into a registry the caller owns (never
// prom-client's global one), so two processes' worth of metrics can coexist in one test.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { CounterName, GaugeName, HistogramName, MetricDefinition } from './metrics-catalogue';

export interface CreateMetricsOptions {
  /**
   * Scrape-time readers for gauges: called on every scrape before the gauge is read, with the
   * gauge to set. A reader that throws fails the scrape, so readers should catch and reset.
   */
  collectors?: Partial<Record<GaugeName, (gauge: Gauge<string>) => void | Promise<void>>>;
}

export interface MetricSet {
  readonly registry: Registry;
  counter(name: CounterName): Counter<string>;
  gauge(name: GaugeName): Gauge<string>;
  histogram(name: HistogramName): Histogram<string>;
}

export function createMetrics(
  registry: Registry,
  definitions: readonly MetricDefinition[],
  options: CreateMetricsOptions = {},
): MetricSet {
  const metrics = new Map<string, Counter<string> | Gauge<string> | Histogram<string>>();
  for (const def of definitions) {
    const base = { name: def.name, help: def.help, labelNames: [...def.labelNames], registers: [registry] };
    switch (def.type) {
      case 'counter':
        metrics.set(def.name, new Counter(base));
        break;
      case 'gauge': {
        const collector = options.collectors?.[def.name as GaugeName];
        metrics.set(
          def.name,
          new Gauge(
            collector
              ? {
                  ...base,
                  collect() {
                    return collector(this);
                  },
                }
              : base,
          ),
        );
        break;
      }
      case 'histogram':
        if (!def.buckets) throw new Error(`metric ${def.name}: a histogram needs buckets`);
        metrics.set(def.name, new Histogram({ ...base, buckets: [...def.buckets] }));
        break;
    }
  }
  const get = <T>(name: string, type: string, cls: new (...args: never[]) => T): T => {
    const metric = metrics.get(name);
    if (!(metric instanceof cls)) throw new Error(`metric ${name} is not a registered ${type} of this set`);
    return metric;
  };
  return {
    registry,
    counter: (name) => get(name, 'counter', Counter<string>),
    gauge: (name) => get(name, 'gauge', Gauge<string>),
    histogram: (name) => get(name, 'histogram', Histogram<string>),
  };
}
