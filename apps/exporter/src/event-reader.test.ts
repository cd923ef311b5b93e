import IORedis from 'ioredis';
import { createLogger, encodeLaneEvent, exporterStateKey, LANE_EVENT, laneEventsKey, MetricLabels, metricsOf } from '@bullpen/core';
import { EventReader } from './event-reader';
import { SeriesStore } from './stored-series';
import { cleanupPrefix } from '../../../test/support/config';
import { redisUrl, testPrefix, waitUntil } from '../../../test/support/wait';

describe('EventReader', () => {
  const prefix = testPrefix('reader-pacing');
  let redis: IORedis;
  let reader: EventReader | undefined;

  beforeAll(() => {
    redis = new IORedis(redisUrl());
  });
  afterAll(async () => {
    await reader?.close();
    await cleanupPrefix(prefix);
    await redis.quit();
  });

  /** A reader of `lanes` as the exporter makes one, but for `options`. */
  function newReader(lanes: string[], options: Partial<ConstructorParameters<typeof EventReader>[0]>): EventReader {
    return new EventReader({
      redis: { mode: 'standalone', url: redisUrl() },
      prefix,
      lanes,
      labels: new MetricLabels({ jobNames: [], tenants: [] }),
      store: new SeriesStore(metricsOf('exporter-events')),
      logger: createLogger('exporter', 'error'),
      ...options,
    });
  }

  function start(lane: string, readIntervalMs: number, batchSize: number): number[] {
    const reads: number[] = [];
    reader = newReader([lane], { batchSize, readIntervalMs, onRead: (entries) => reads.push(entries) });
    reader.start();
    return reads;
  }

  const add = (lane: string, n: number) =>
    redis.xadd(laneEventsKey(prefix, lane), '*', 'event', 'completed', 'jobId', String(n), 'returnvalue', 'null');

  it('waits out the interval after a batch that filled nothing, and reads again at once after a full one', async () => {
    const reads = start('trickle', 60_000, 20);
    await waitUntil(() => reader?.up, { what: 'the reader to start' });
    await add('trickle', 0);
    await waitUntil(() => reads.length === 1, { what: 'the first entry to be read' });
    // One at a time: read as soon as each arrived, these would come in many small batches.
    for (let i = 1; i <= 30; i += 1) await add('trickle', i);
    // Before the interval is over, nothing more is read...
    expect(reads).toEqual([1]);
    await reader!.close();
    reader = undefined;

    // ...and a reader that finds a full batch does not wait: 45 entries come as 20, 20, 5.
    for (let i = 0; i < 45; i += 1) await add('flood', i);
    const next = start('flood', 60_000, 20);
    await waitUntil(() => next.reduce((a, b) => a + b, 0) === 45, { what: 'the second reader to read every entry' });
    expect(next).toEqual([20, 20, 5]);
  });

  it('keeps reading at its interval when the wall clock steps back', async () => {
    await reader?.close();
    const realNow = Date.now.bind(Date);
    const stepMs = 120_000;
    const reads: number[] = [];
    reader = newReader(['stepped'], {
      readIntervalMs: 100,
      onRead: (entries) => {
        reads.push(entries);
        // Between a read and the wait before the next one: the next wait is measured against a
        // read begun before the step, as happens when NTP steps the clock of a busy exporter.
        if (reads.length === 1) jest.spyOn(Date, 'now').mockImplementation(() => realNow() - stepMs);
      },
    });
    try {
      reader.start();
      await waitUntil(() => reader?.up, { what: 'the reader to start' });
      await add('stepped', 0);
      await waitUntil(() => reads.length === 1, { what: 'the entry before the step to be read' });
      await add('stepped', 1);
      // Far less than the step: a reader that waited it out would not read this in time.
      await waitUntil(() => reads.length === 2, { what: 'the entry after the step to be read', timeoutMs: 5000 });
    } finally {
      jest.restoreAllMocks();
    }
  });

  it('counts every completed attempt again from the start of the stream, flush tokens already seen included', async () => {
    await reader?.close();
    const LANE = 'regone';
    const store = new SeriesStore(metricsOf('exporter-events'));
    reader = newReader([LANE], { store, readIntervalMs: 20 });
    const attempts = () => store.values('bullpen_job_attempts_total').reduce((sum, s) => sum + s.value, 0);
    const flush = (seq: number) =>
      redis.xadd(
        laneEventsKey(prefix, LANE),
        '*',
        ...encodeLaneEvent({
          event: LANE_EVENT.completedAttempts,
          worker: 'w1',
          attempts: [{ jobId: String(seq), name: 'noop', tenant: 'acme', attempt: 1, runMs: 5, waitMs: 1 }],
          flush: { writer: 'buffer-1', seq },
        }),
      );
    reader.start();
    await waitUntil(() => reader?.up, { what: 'the reader to start' });
    await flush(1);
    await flush(2);
    await waitUntil(() => attempts() === 2, { what: 'both flushes to be counted' });
    await waitUntil(async () => (await redis.exists(exporterStateKey(prefix, LANE))) === 1, { what: 'the first commit' });
    // The state is lost while the stream stays (an evicted state hash, a Redis restored from before
    // the lane's first commit): the reader starts the lane over from 0 and reads both entries again.
    await redis.del(exporterStateKey(prefix, LANE));
    await flush(3);
    await waitUntil(() => attempts() === 3, { what: 'the lane to be counted again from the start of its stream' });
  });
});
