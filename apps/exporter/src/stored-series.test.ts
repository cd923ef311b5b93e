import { metricDefinition, type MetricDefinition } from '@bullpen/core';
import { bucketIndex, INDEXED_BUCKET_BOUNDS, LaneDelta, SeriesStore } from './stored-series';

const def = (name: string): MetricDefinition => {
  const found = metricDefinition(name);
  if (!found) throw new Error(name);
  return found;
};
const completed = def('bullpen_jobs_completed_total');
const failed = def('bullpen_jobs_failed_total');
const run = def('bullpen_job_run_duration_seconds');
const lostAt = def('bullpen_exporter_events_lost_last_timestamp_seconds');

describe('stored series', () => {
  it('puts an observation in the first bucket whose bound is at least the value, or +Inf', () => {
    const b = [0.1, 1, 10];
    expect(bucketIndex(b, 0)).toBe(0);
    expect(bucketIndex(b, 0.1)).toBe(0);
    expect(bucketIndex(b, 0.11)).toBe(1);
    expect(bucketIndex(b, 10)).toBe(2);
    expect(bucketIndex(b, 11)).toBe(3);
  });

  it('encodes deltas as the fields persisted in Redis: counters, per-bucket counts and float sums', () => {
    const delta = new LaneDelta();
    delta.inc(completed, { lane: 'a' });
    delta.inc(completed, { lane: 'a' }, 2);
    delta.inc(failed, { lane: 'a', error_class: 'network' });
    delta.observe(run, { lane: 'a', job_name: 'noop', outcome: 'completed' }, 0.003);
    delta.observe(run, { lane: 'a', job_name: 'noop', outcome: 'completed' }, 4000);
    expect(Object.fromEntries(delta.ints)).toEqual({
      'bullpen_jobs_completed_total|a': 3,
      'bullpen_jobs_failed_total|a|network': 1,
      'bullpen_job_run_duration_seconds|le0.005|a|noop|completed': 1,
      'bullpen_job_run_duration_seconds|le+Inf|a|noop|completed': 1,
    });
    expect(Object.fromEntries(delta.floats)).toEqual({ 'bullpen_job_run_duration_seconds|sum|a|noop|completed': 4000.003 });
  });

  it('records observations already sorted into buckets as the same fields as one observe each', () => {
    const labels = { lane: 'a', job_name: 'noop', outcome: 'completed' };
    const values = [0.003, 0.004, 400, 0.2];
    const one = new LaneDelta();
    for (const value of values) one.observe(run, labels, value);
    const counts = new Array<number>((run.buckets ?? []).length + 1).fill(0);
    let sum = 0;
    for (const value of values) {
      const i = bucketIndex(run.buckets ?? [], value);
      counts[i] = (counts[i] as number) + 1;
      sum += value;
    }
    const all = new LaneDelta();
    all.observeAll(run, labels, counts, sum);
    expect(Object.fromEntries(all.ints)).toEqual(Object.fromEntries(one.ints));
    expect(Object.fromEntries(all.floats)).toEqual(Object.fromEntries(one.floats));
    const none = new LaneDelta();
    none.observeAll(run, labels, counts.map(() => 0), 0);
    expect(none.empty).toBe(true);
  });

  it('exports cumulative buckets, sum and count, and loads back exactly what it saved', async () => {
    const store = new SeriesStore([completed, failed, run]);
    const delta = new LaneDelta();
    delta.inc(completed, { lane: 'a' }, 5);
    for (const v of [0.004, 0.2, 0.2, 3]) delta.observe(run, { lane: 'a', job_name: 'noop', outcome: 'completed' }, v);
    store.apply('a', delta);
    const buckets = store.values('bullpen_job_run_duration_seconds').filter((v) => v.metricName?.endsWith('_bucket'));
    const le = (bound: number | string) => buckets.find((v) => v.labels.le === bound)?.value;
    expect([le(0.005), le(0.1), le(0.25), le(2.5), le(5), le('+Inf')]).toEqual([1, 1, 3, 3, 4, 4]);
    const count = store.values('bullpen_job_run_duration_seconds').find((v) => v.metricName?.endsWith('_count'));
    expect(count?.value).toBe(4);

    const persisted: Record<string, string> = {};
    for (const [f, v] of [...delta.ints, ...delta.floats]) persisted[f] = String(v);
    const reloaded = new SeriesStore([completed, failed, run]);
    expect(reloaded.loadLane('a', persisted)).toEqual([]);
    expect(reloaded.values('bullpen_job_run_duration_seconds')).toEqual(store.values('bullpen_job_run_duration_seconds'));
    expect(reloaded.counterValue('a', 'bullpen_jobs_completed_total', { lane: 'a' })).toBe(5);
  });

  it('reads bucket fields saved under other bounds into the bucket of the next bound, keeping the other cumulative counts', () => {
    const h: MetricDefinition = { name: 'h', type: 'histogram', help: 'h', labelNames: ['lane'], buckets: [1, 10, 100], origin: 'exporter-events' };
    const store = new SeriesStore([h]);
    const unknown = store.loadLane('a', {
      'h|le1|a': '1',
      'h|le5|a': '2', // 5 is no longer a bound: counted at 10
      'h|le10|a': '3',
      'h|le+Inf|a': '1',
      'h|sum|a': '42',
      'h|le|a': '1',
      'h|leten|a': '1',
    });
    expect(unknown.sort()).toEqual(['h|leten|a', 'h|le|a']);
    const cumulative = store.values('h').filter((v) => v.metricName === 'h_bucket').map((v) => [v.labels.le, v.value]);
    expect(cumulative).toEqual([
      [1, 1],
      [10, 6],
      [100, 6],
      ['+Inf', 7],
    ]);
  });

  it('reads the bucket fields of older exporters, named by index, under the bounds they were written with', () => {
    // Written under 16 bounds, … 5, 10, 30, 60, 120, 300: b12 is 10-30 s, b16 over 300 s.
    expect(INDEXED_BUCKET_BOUNDS.bullpen_job_run_duration_seconds).toHaveLength(16);
    const labels = 'a|noop|completed';
    const store = new SeriesStore([run]);
    const unknown = store.loadLane('a', {
      [`bullpen_job_run_duration_seconds|b0|${labels}`]: '1', // ≤ 5 ms
      [`bullpen_job_run_duration_seconds|b12|${labels}`]: '2', // 10-30 s
      [`bullpen_job_run_duration_seconds|b16|${labels}`]: '1', // over 300 s
      [`bullpen_job_run_duration_seconds|le30|${labels}`]: '5', // the same bucket, saved by a newer exporter
      [`bullpen_job_run_duration_seconds|sum|${labels}`]: '200',
      [`bullpen_job_run_duration_seconds|b17|${labels}`]: '1',
    });
    expect(unknown).toEqual([`bullpen_job_run_duration_seconds|b17|${labels}`]);
    const buckets = store.values('bullpen_job_run_duration_seconds').filter((v) => v.metricName?.endsWith('_bucket'));
    const le = (bound: number | string) => buckets.find((v) => v.labels.le === bound)?.value;
    expect([le(0.005), le(10), le(30), le(300), le(1800), le('+Inf')]).toEqual([1, 1, 8, 8, 8, 9]);
    // A bound added between two old ones holds nothing of the old bucket around it.
    expect([le(15), le(20)]).toEqual([1, 1]);
  });

  it('ignores saved fields of metrics or label sets that are no longer in the catalogue', () => {
    const store = new SeriesStore([completed]);
    const unknown = store.loadLane('a', {
      'bullpen_jobs_completed_total|a': '2',
      'bullpen_jobs_completed_total|a|extra': '1',
      'bullpen_gone_total|a': '9',
      'bullpen_jobs_completed_total|a|': 'NaN',
    });
    expect(unknown.sort()).toEqual(['bullpen_gone_total|a', 'bullpen_jobs_completed_total|a|', 'bullpen_jobs_completed_total|a|extra']);
    expect(store.counterValue('a', 'bullpen_jobs_completed_total', { lane: 'a' })).toBe(2);
  });

  it('pre-initialises series at zero, and a reload of one lane leaves the others alone', () => {
    const store = new SeriesStore([completed]);
    store.ensure('a', completed, { lane: 'a' });
    const delta = new LaneDelta();
    delta.inc(completed, { lane: 'b' }, 4);
    store.apply('b', delta);
    expect(store.values('bullpen_jobs_completed_total')).toEqual([
      { labels: { lane: 'a' }, value: 0 },
      { labels: { lane: 'b' }, value: 4 },
    ]);
    store.loadLane('a', { 'bullpen_jobs_completed_total|a': '7' });
    expect(store.counterValue('a', 'bullpen_jobs_completed_total', { lane: 'a' })).toBe(7);
    expect(store.counterValue('b', 'bullpen_jobs_completed_total', { lane: 'b' })).toBe(4);
  });

  it('serves the time of the last loss as Redis stamped it at the commit, and loads it back', () => {
    const store = new SeriesStore([completed, lostAt]);
    store.ensure('a', lostAt, { lane: 'a' });
    expect(store.values('bullpen_exporter_events_lost_last_timestamp_seconds')).toEqual([{ labels: { lane: 'a' }, value: 0 }]);
    const delta = new LaneDelta();
    delta.stamp(lostAt, { lane: 'a' });
    expect(delta.empty).toBe(false);
    expect([...delta.stamps]).toEqual(['bullpen_exporter_events_lost_last_timestamp_seconds|a']);
    // What the commit returns for the stamp is the value; a later loss replaces it.
    for (const at of [1764000000.123, 1764003600.5]) {
      store.apply('a', delta);
      store.adoptTotals('a', new Map([['bullpen_exporter_events_lost_last_timestamp_seconds|a', at]]));
      expect(store.counterValue('a', 'bullpen_exporter_events_lost_last_timestamp_seconds', { lane: 'a' })).toBe(at);
    }
    const reloaded = new SeriesStore([completed, lostAt]);
    expect(reloaded.loadLane('a', { 'bullpen_exporter_events_lost_last_timestamp_seconds|a': '1764003600.5' })).toEqual([]);
    expect(reloaded.values('bullpen_exporter_events_lost_last_timestamp_seconds')).toEqual([{ labels: { lane: 'a' }, value: 1764003600.5 }]);
  });

  it('finds a later served loss time than the saved one, to write back as the time itself', () => {
    const served = new SeriesStore([completed, lostAt]);
    served.loadLane('a', { 'bullpen_exporter_events_lost_last_timestamp_seconds|a': '1764003600.5' });
    const shortfall = served.shortfall('a', { 'bullpen_exporter_events_lost_last_timestamp_seconds|a': '1764000000.25' });
    expect(Object.fromEntries(shortfall.ints)).toEqual({});
    expect(Object.fromEntries(shortfall.sums)).toEqual({ 'bullpen_exporter_events_lost_last_timestamp_seconds|a': 1764003600.5 });
    expect(served.shortfall('a', { 'bullpen_exporter_events_lost_last_timestamp_seconds|a': '1764003600.5' }).sums.size).toBe(0);
  });

  it('finds what saved totals lack of the served ones, also under older bucket fields, and raises them to it', () => {
    const labels = { lane: 'a', job_name: 'noop', outcome: 'completed' };
    const served = new SeriesStore([completed, run]);
    const delta = new LaneDelta();
    delta.inc(completed, { lane: 'a' }, 5);
    for (let i = 0; i < 3; i += 1) delta.observe(run, labels, 0.001);
    delta.observe(run, labels, 7);
    served.apply('a', delta);
    // Saved partly by an older exporter (its bucket b0 is le0.005), and behind on all but le10.
    const saved = {
      'bullpen_jobs_completed_total|a': '4',
      'bullpen_job_run_duration_seconds|b0|a|noop|completed': '2',
      'bullpen_job_run_duration_seconds|le10|a|noop|completed': '1',
      'bullpen_job_run_duration_seconds|sum|a|noop|completed': '7.002',
    };

    const shortfall = served.shortfall('a', saved);
    expect(Object.fromEntries(shortfall.ints)).toEqual({
      'bullpen_jobs_completed_total|a': 1,
      'bullpen_job_run_duration_seconds|le0.005|a|noop|completed': 1,
    });
    expect(Object.fromEntries(shortfall.sums)).toEqual({ 'bullpen_job_run_duration_seconds|sum|a|noop|completed': 7.003 });
    expect(served.shortfall('a', { ...saved, 'bullpen_jobs_completed_total|a': '9' }).ints.has('bullpen_jobs_completed_total|a')).toBe(false);

    const before = served.values(run.name);
    served.loadLaneRaised('a', saved, shortfall);
    expect(served.counterValue('a', completed.name, { lane: 'a' })).toBe(5);
    expect(served.values(run.name)).toEqual(before);
  });
});
