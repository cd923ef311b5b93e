// The exporter's event-derived counters and histograms (and the gauge of when events were last
// lost), held as plain numbers keyed by the same field names they are persisted under in Redis
// (one hash per lane), so that a batch's deltas can be committed atomically with the stream
// position and loaded back after a restart.
//
// Field encoding, one field per number:
//   counter    `<name>|<label values in catalogue order, joined by |>`
//   gauge      `<name>|<label values>`             a time (Unix seconds) Redis stamped at a commit
//   histogram  `<name>|le<bound>|<label values>`  observations in the bucket of that upper bound
//                                                  (not cumulative; `le+Inf` is the overflow)
//              `<name>|sum|<label values>`         sum of observations
// Label values are bounded (lanes, allow-listed names, error classes) and never contain `|`.
//
// A bucket is named by its bound, not its position, so that totals saved under one bucket layout
// still read right after the catalogue's buckets change: a saved bound that is no longer one is
// counted in the next bound above it, which keeps every cumulative count at the other bounds
// exact. Exporters before this named buckets by index (`b<i>`); INDEXED_BUCKET_BOUNDS reads those.
import type { MetricDefinition } from '@bullpen/core';

type Labels = Record<string, string>;

interface CounterSeries {
  labels: Labels;
  value: number;
}
interface HistogramSeries {
  labels: Labels;
  buckets: number[];
  sum: number;
}

const SEP = '|';
const INF = '+Inf';

/**
 * The bucket bounds that older exporters' `b<i>` fields were written under: bucket i of these
 * bounds (i = length being +Inf). They are the catalogue's buckets at the time, fixed here so
 * that those saved totals keep their meaning whatever the catalogue says now.
 */
export const INDEXED_BUCKET_BOUNDS: Readonly<Record<string, readonly number[]>> = {
  bullpen_job_run_duration_seconds: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 2.5, 5, 10, 30, 60, 120, 300],
  bullpen_job_wait_duration_seconds: [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800,
  ],
  bullpen_job_backoff_delay_seconds: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600],
};

/** The field part naming each bucket of a histogram, by index (`le<bound>`, last `le+Inf`); built once per definition. */
const bucketParts = new WeakMap<MetricDefinition, string[]>();
function bucketPart(def: MetricDefinition, index: number): string {
  let parts = bucketParts.get(def);
  if (!parts) {
    parts = [...(def.buckets ?? []).map((bound) => `le${bound}`), `le${INF}`];
    bucketParts.set(def, parts);
  }
  return parts[index] as string;
}

/** The bucket a saved field part (`le<bound>`, or an older `b<i>`) counts in now; undefined when it is not one. */
function bucketOfPart(def: MetricDefinition, part: string): number | undefined {
  const bounds = def.buckets ?? [];
  let bound: number;
  if (part.startsWith('le')) {
    const text = part.slice(2);
    bound = text === INF ? Infinity : text.trim() === '' ? NaN : Number(text);
    if (Number.isNaN(bound)) return undefined;
  } else {
    const index = /^b(\d+)$/.exec(part);
    if (!index) return undefined;
    const old = INDEXED_BUCKET_BOUNDS[def.name] ?? bounds;
    const i = Number(index[1]);
    if (i > old.length) return undefined;
    bound = i === old.length ? Infinity : (old[i] as number);
  }
  return bucketIndex(bounds, bound);
}

function labelValue(def: MetricDefinition, labels: Labels, name: string): string {
  const value = labels[name];
  if (value === undefined) throw new Error(`metric ${def.name}: label ${name} missing`);
  return value;
}

function labelValues(def: MetricDefinition, labels: Labels): string[] {
  return def.labelNames.map((name) => labelValue(def, labels, name));
}

/** `|<value>` for each label, in catalogue order: what follows the name (and bucket) in a field. */
function labelSuffix(def: MetricDefinition, labels: Labels): string {
  let suffix = '';
  for (const name of def.labelNames) suffix += SEP + labelValue(def, labels, name);
  return suffix;
}

/** Index of the bucket an observation falls in (`le` semantics); buckets.length for +Inf. */
export function bucketIndex(buckets: readonly number[], value: number): number {
  for (let i = 0; i < buckets.length; i += 1) if (value <= (buckets[i] as number)) return i;
  return buckets.length;
}

/**
 * A batch's changes for one lane: integer deltas (counts), float deltas (histogram sums), and
 * gauge fields to be set to Redis's time at the commit (the batch found events lost).
 */
export class LaneDelta {
  readonly ints = new Map<string, number>();
  readonly floats = new Map<string, number>();
  readonly stamps = new Set<string>();

  // Called several times for every stream entry: the fields are built by concatenation, without
  // the arrays a join would need.
  inc(def: MetricDefinition, labels: Labels, by = 1): void {
    if (by === 0) return;
    const field = def.name + labelSuffix(def, labels);
    this.ints.set(field, (this.ints.get(field) ?? 0) + by);
  }

  observe(def: MetricDefinition, labels: Labels, value: number): void {
    const suffix = labelSuffix(def, labels);
    const bucket = `${def.name}${SEP}${bucketPart(def, bucketIndex(def.buckets ?? [], value))}${suffix}`;
    const sum = `${def.name}${SEP}sum${suffix}`;
    this.ints.set(bucket, (this.ints.get(bucket) ?? 0) + 1);
    this.floats.set(sum, (this.floats.get(sum) ?? 0) + value);
  }

  /** Observations already sorted into buckets (`counts[i]` in bucket i), and their sum. */
  observeAll(def: MetricDefinition, labels: Labels, counts: readonly number[], sum: number): void {
    const suffix = labelSuffix(def, labels);
    let seen = 0;
    counts.forEach((count, i) => {
      if (count === 0) return;
      seen += count;
      const bucket = `${def.name}${SEP}${bucketPart(def, i)}${suffix}`;
      this.ints.set(bucket, (this.ints.get(bucket) ?? 0) + count);
    });
    if (seen === 0) return;
    const field = `${def.name}${SEP}sum${suffix}`;
    this.floats.set(field, (this.floats.get(field) ?? 0) + sum);
  }

  /** Sets a timestamp gauge to the time of the commit, as Redis tells it (LaneStateStore.commit). */
  stamp(def: MetricDefinition, labels: Labels): void {
    if (def.type !== 'gauge') throw new Error(`metric ${def.name}: only gauges are stamped`);
    this.stamps.add(def.name + labelSuffix(def, labels));
  }

  get empty(): boolean {
    return this.ints.size === 0 && this.floats.size === 0 && this.stamps.size === 0;
  }
}

/**
 * What a lane's saved totals lack of the totals served: integer fields by how much the saved total
 * falls short, histogram sums at the served total itself (see SeriesStore.shortfall).
 */
export class LaneShortfall {
  readonly ints = new Map<string, number>();
  readonly sums = new Map<string, number>();

  get empty(): boolean {
    return this.ints.size === 0 && this.sums.size === 0;
  }

  /** The sum of the integer fields of one metric (for logs). */
  total(def: MetricDefinition): number {
    let sum = 0;
    for (const [field, by] of this.ints) if (field.startsWith(def.name + SEP)) sum += by;
    return sum;
  }
}

/** Totals of every event-derived series, across lanes; what the stored metrics export. */
export class SeriesStore {
  private readonly defs: ReadonlyMap<string, MetricDefinition>;
  /** Per lane (so one lane can be reloaded alone), per metric, per label key. */
  private readonly lanes = new Map<string, Map<string, Map<string, CounterSeries | HistogramSeries>>>();

  constructor(definitions: readonly MetricDefinition[]) {
    this.defs = new Map(definitions.map((d) => [d.name, d]));
  }

  /** Replaces a lane's totals with persisted fields; returns the fields it did not recognise. */
  loadLane(lane: string, fields: Readonly<Record<string, string>>): string[] {
    this.lanes.set(lane, new Map());
    const delta = new LaneDelta();
    const unknown: string[] = [];
    for (const [field, raw] of Object.entries(fields)) {
      const value = Number(raw);
      if (!this.parseField(field) || !Number.isFinite(value)) {
        unknown.push(field);
        continue;
      }
      if (field.split(SEP)[1] === 'sum') delta.floats.set(field, value);
      else delta.ints.set(field, value);
    }
    this.apply(lane, delta);
    return unknown;
  }

  /** Makes sure a series exists (at 0), so that alerts and rate() see it before its first event. */
  ensure(lane: string, def: MetricDefinition, labels: Labels): void {
    this.series(lane, def, labelValues(def, labels));
  }

  /** Adds a committed batch's deltas; its stamps take their value from adoptTotals. */
  apply(lane: string, delta: LaneDelta): void {
    for (const [field, by] of delta.ints) this.add(lane, field, by);
    for (const [field, by] of delta.floats) this.add(lane, field, by);
  }

  /**
   * Sets sum fields to the totals Redis holds after a commit (in place of the exporter's own
   * addition of the deltas, which can differ from them in the last bits): what is served is then
   * exactly what a restart reloads, and a _sum never steps down across one. Stamped gauges take
   * the time Redis gave them.
   */
  adoptTotals(lane: string, totals: ReadonlyMap<string, number>): void {
    for (const [field, total] of totals) {
      const parsed = this.parseField(field);
      if (!parsed || !Number.isFinite(total)) continue;
      if (parsed.def.type === 'gauge') {
        (this.series(lane, parsed.def, parsed.values) as CounterSeries).value = total;
        continue;
      }
      if (parsed.part !== 'sum') continue;
      const series = this.series(lane, parsed.def, parsed.values);
      if (!('value' in series)) series.sum = total;
    }
  }

  /**
   * The totals `lane` serves above those of the saved `fields` (in loadLane's form). Commits only
   * add, so a saved state that descends from this exporter's last commit (another exporter's, say)
   * holds at least every served total and the shortfall is empty; one that does not means Redis
   * lost commits that the served totals include.
   */
  shortfall(lane: string, fields: Readonly<Record<string, string>>): LaneShortfall {
    const saved = new SeriesStore([...this.defs.values()]);
    saved.loadLane(lane, fields);
    const out = new LaneShortfall();
    for (const [name, byLabels] of this.lanes.get(lane) ?? []) {
      const def = this.defs.get(name) as MetricDefinition;
      for (const series of byLabels.values()) {
        const suffix = labelSuffix(def, series.labels);
        const other = saved.series(lane, def, labelValues(def, series.labels));
        if ('value' in series) {
          // A stamped gauge (a time) is written back as the value served, as a _sum is.
          if (def.type === 'gauge') {
            if (series.value > (other as CounterSeries).value) out.sums.set(def.name + suffix, series.value);
            continue;
          }
          const by = series.value - (other as CounterSeries).value;
          if (by > 0) out.ints.set(def.name + suffix, by);
          continue;
        }
        const kept = other as HistogramSeries;
        series.buckets.forEach((count, i) => {
          const by = count - (kept.buckets[i] ?? 0);
          if (by > 0) out.ints.set(`${def.name}${SEP}${bucketPart(def, i)}${suffix}`, by);
        });
        if (series.sum > kept.sum) out.sums.set(`${def.name}${SEP}sum${suffix}`, series.sum);
      }
    }
    return out;
  }

  /**
   * Replaces a lane's totals with the saved `fields` raised by `shortfall` (written back into
   * Redis as the same): every total is then the greater of the saved and the served one.
   */
  loadLaneRaised(lane: string, fields: Readonly<Record<string, string>>, shortfall: LaneShortfall): string[] {
    const unknown = this.loadLane(lane, fields);
    const delta = new LaneDelta();
    for (const [field, by] of shortfall.ints) delta.ints.set(field, by);
    this.apply(lane, delta);
    this.adoptTotals(lane, shortfall.sums);
    return unknown;
  }

  /** Current value of a counter or gauge series (tests and logs). */
  counterValue(lane: string, name: string, labels: Labels): number {
    const def = this.defs.get(name);
    if (!def) return 0;
    const series = this.lanes.get(lane)?.get(name)?.get(labelValues(def, labels).join(SEP));
    return series && 'value' in series ? series.value : 0;
  }

  /** Values in prom-client's shape for one metric, with histogram buckets made cumulative. */
  values(name: string): Array<{ labels: Record<string, string | number>; value: number; metricName?: string }> {
    const def = this.defs.get(name);
    if (!def) return [];
    const out: Array<{ labels: Record<string, string | number>; value: number; metricName?: string }> = [];
    for (const metrics of this.lanes.values()) {
      for (const series of metrics.get(name)?.values() ?? []) {
        if ('value' in series) {
          out.push({ labels: series.labels, value: series.value });
          continue;
        }
        const bounds = def.buckets ?? [];
        let cumulative = 0;
        series.buckets.forEach((count, i) => {
          cumulative += count;
          const le = i < bounds.length ? (bounds[i] as number) : '+Inf';
          out.push({ metricName: `${name}_bucket`, labels: { ...series.labels, le }, value: cumulative });
        });
        out.push({ metricName: `${name}_sum`, labels: series.labels, value: series.sum });
        out.push({ metricName: `${name}_count`, labels: series.labels, value: cumulative });
      }
    }
    return out;
  }

  /** A field's metric and label values, and for a histogram field its part: the sum, or a bucket of the current bounds. */
  private parseField(field: string): { def: MetricDefinition; part?: 'sum' | number; values: string[] } | undefined {
    const [name = '', ...rest] = field.split(SEP);
    const def = this.defs.get(name);
    if (!def) return undefined;
    if (def.type === 'histogram') {
      const [text = '', ...values] = rest;
      const part = text === 'sum' ? 'sum' : bucketOfPart(def, text);
      if (part === undefined) return undefined;
      return values.length === def.labelNames.length ? { def, part, values } : undefined;
    }
    return rest.length === def.labelNames.length ? { def, values: rest } : undefined;
  }

  private add(lane: string, field: string, by: number): void {
    const parsed = this.parseField(field);
    if (!parsed) throw new Error(`unknown series field ${field}`);
    const series = this.series(lane, parsed.def, parsed.values);
    if ('value' in series) series.value += by;
    else if (parsed.part === 'sum') series.sum += by;
    else {
      const i = parsed.part as number;
      series.buckets[i] = (series.buckets[i] ?? 0) + by;
    }
  }

  private series(lane: string, def: MetricDefinition, values: string[]): CounterSeries | HistogramSeries {
    let metrics = this.lanes.get(lane);
    if (!metrics) this.lanes.set(lane, (metrics = new Map()));
    let byLabels = metrics.get(def.name);
    if (!byLabels) metrics.set(def.name, (byLabels = new Map()));
    const key = values.join(SEP);
    let series = byLabels.get(key);
    if (!series) {
      const labels: Labels = {};
      def.labelNames.forEach((name, i) => (labels[name] = values[i] as string));
      series =
        def.type === 'histogram'
          ? { labels, buckets: new Array<number>((def.buckets?.length ?? 0) + 1).fill(0), sum: 0 }
          : { labels, value: 0 };
      byLabels.set(key, series);
    }
    return series;
  }
}
