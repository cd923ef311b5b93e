import IORedis from 'ioredis';
import { createLogger, exporterStateKey, laneEventsKey, metricDefinition, metricsOf, type MetricDefinition } from '@bullpen/core';
import type { Cursor } from './lane-cursor';
import { LaneReload } from './lane-reload';
import { LaneStateStore } from './lane-state-store';
import { LaneDelta, SeriesStore } from './stored-series';
import { cleanupPrefix } from '../../../test/support/config';
import { captureLogs } from '../../../test/support/logs';
import { redisUrl, testPrefix } from '../../../test/support/wait';

const def = (name: string): MetricDefinition => {
  const found = metricDefinition(name);
  if (!found) throw new Error(name);
  return found;
};
const completed = def('bullpen_jobs_completed_total');
const wait = def('bullpen_job_wait_duration_seconds');
const processed = def('bullpen_exporter_events_processed_total');
const LANE = 'alpha';
const waitLabels = { lane: LANE, job_name: 'noop' };
const SUM_FIELD = `bullpen_job_wait_duration_seconds|sum|${LANE}|noop`;

/** `n` completed jobs that waited `seconds` each. */
function jobs(n: number, seconds: number): LaneDelta {
  const delta = new LaneDelta();
  delta.inc(completed, { lane: LANE }, n);
  for (let i = 0; i < n; i += 1) delta.observe(wait, waitLabels, seconds);
  return delta;
}

describe('reloading a lane whose saved position moved', () => {
  const prefix = testPrefix('lane-reload');
  const key = laneEventsKey(prefix, LANE);
  let redis: IORedis;
  let state: LaneStateStore;
  let store: SeriesStore;
  let conflicts: number;
  let reload: LaneReload;

  beforeAll(() => {
    redis = new IORedis(redisUrl());
  });
  beforeEach(async () => {
    await cleanupPrefix(prefix);
    state = new LaneStateStore(redis, prefix);
    store = new SeriesStore(metricsOf('exporter-events'));
    conflicts = 0;
    reload = new LaneReload({ state, store, logger: createLogger('exporter', 'error'), onConflict: () => (conflicts += 1) });
    for (let i = 1; i <= 4; i += 1) await redis.xadd(key, `${i}-0`, 'event', 'completed', 'jobId', String(i));
  });
  afterAll(async () => {
    await cleanupPrefix(prefix);
    await redis.quit();
  });

  /**
   * A reader that committed the entries up to `savedAt` (`savedRead` of them), then counted the
   * rest up to `cursorAt` in commits Redis then lost (it came back with the stream up to 4-0).
   */
  async function servedPastWhatRedisKept(savedAt = '3-0', savedRead = 3, cursorAt = '5-0', cursorRead = 5): Promise<Cursor> {
    const [ok] = await state.commit([{ lane: LANE, expected: '', position: savedAt, readDelta: savedRead, delta: jobs(savedRead, 0.1) }]);
    expect(ok).toBeDefined();
    store.loadLane(LANE, (await state.load(LANE)).series);
    store.apply(LANE, jobs(cursorRead - savedRead, 0.7));
    return { lane: LANE, key, position: cursorAt, saved: cursorAt, read: cursorRead };
  }

  it('keeps the served totals, writes them back, and resumes after the entries Redis kept that were counted', async () => {
    const cursor = await servedPastWhatRedisKept();
    const sum = store.values(wait.name).find((v) => v.metricName === `${wait.name}_sum`)?.value as number;

    expect(await reload.reload(cursor)).toBe('restored');

    // 4-0 is still in the stream and was counted: the reader goes on after it, not after 3-0.
    expect(cursor).toEqual({ lane: LANE, key, position: '4-0', saved: '4-0', read: 4 });
    expect(store.counterValue(LANE, completed.name, { lane: LANE })).toBe(5);
    const saved = await state.load(LANE);
    expect(saved.position).toBe('4-0');
    expect(saved.read).toBe(4);
    const reloaded = new SeriesStore(metricsOf('exporter-events'));
    reloaded.loadLane(LANE, saved.series);
    expect(reloaded.counterValue(LANE, completed.name, { lane: LANE })).toBe(5);
    // The sum written is the one served, to the last bit: a restart never shows it lower.
    expect(await redis.hget(exporterStateKey(prefix, LANE), SUM_FIELD)).toBe(String(sum));
    expect(reloaded.values(wait.name)).toEqual(store.values(wait.name));
    expect(conflicts).toBe(0);
  });

  it('counts entries trimmed past the saved position as read, from the counts the stream keeps', async () => {
    for (const id of ['5-0', '6-0']) await redis.xadd(key, id, 'event', 'completed', 'jobId', id);
    const cursor = await servedPastWhatRedisKept('2-0', 2, '7-0', 7);
    await redis.xtrim(key, 'MINID', '5-0'); // 3-0 and 4-0, after the saved position, are gone

    expect(await reload.reload(cursor)).toBe('restored');

    expect(cursor).toMatchObject({ position: '6-0', read: 6 });
  });

  it("adopts another exporter's state when it holds every served total", async () => {
    await state.commit([{ lane: LANE, expected: '', position: '3-0', readDelta: 3, delta: jobs(3, 0.1) }]);
    store.loadLane(LANE, (await state.load(LANE)).series);
    const cursor: Cursor = { lane: LANE, key, position: '3-0', saved: '3-0', read: 3 };
    const another = new LaneStateStore(redis, prefix);
    await another.commit([{ lane: LANE, expected: '3-0', position: '4-0', readDelta: 1, delta: jobs(1, 0.2) }]);

    expect(await reload.reload(cursor)).toBe('adopted');

    expect(cursor).toEqual({ lane: LANE, key, position: '4-0', saved: '4-0', read: 4 });
    expect(store.counterValue(LANE, completed.name, { lane: LANE })).toBe(4);
    expect(conflicts).toBe(1);
  });

  it('adopts its own commit, sent again after its reply was lost, as no conflict', async () => {
    const logger = createLogger('exporter', 'info');
    const lines = captureLogs(logger);
    reload = new LaneReload({ state, store, logger, onConflict: () => (conflicts += 1) });
    const commit = { lane: LANE, expected: '', position: '3-0', readDelta: 3, delta: jobs(3, 0.1) };
    // Redis stored the commit; the connection dropped before its reply, and sent it again.
    await state.commit([commit]);
    const [resent] = await state.commit([commit]);
    expect(resent).toBeUndefined();
    const cursor: Cursor = { lane: LANE, key, position: '0-0', saved: '', read: 0 };

    expect(await reload.reload(cursor)).toBe('adopted');

    expect(cursor).toEqual({ lane: LANE, key, position: '3-0', saved: '3-0', read: 3 });
    expect(store.counterValue(LANE, completed.name, { lane: LANE })).toBe(3);
    expect(conflicts).toBe(0);
    expect(lines.filter((line) => line.level !== 'info')).toEqual([]);
  });

  it('counts the lane again from 0 when Redis holds no state of it at all, and says Redis lost it', async () => {
    const cursor = await servedPastWhatRedisKept();
    // As the reader's store has: entries counted by event name (a label the lane alone does not fill).
    const counted = new LaneDelta();
    counted.inc(processed, { lane: LANE, event: 'completed' }, cursor.read);
    store.apply(LANE, counted);
    await redis.del(exporterStateKey(prefix, LANE));
    const gone: string[] = [];
    const logger = createLogger('exporter', 'info');
    const lines = captureLogs(logger);
    reload = new LaneReload({ state, store, logger, onConflict: () => (conflicts += 1), onGone: (lane) => gone.push(lane) });

    expect(await reload.reload(cursor)).toBe('gone');

    expect(cursor).toEqual({ lane: LANE, key, position: '0-0', saved: '', read: 0 });
    expect(store.counterValue(LANE, completed.name, { lane: LANE })).toBe(0);
    expect(conflicts).toBe(0);
    expect(gone).toEqual([LANE]);
    expect(lines).toEqual([
      expect.objectContaining({
        level: 'warn',
        msg: "Redis lost the exporter's saved state of this lane (it came back empty or was flushed): counting the lane stream again from 0",
        lane: LANE,
        position: '5-0',
        entriesCounted: 5,
        completedCounted: 5,
      }),
    ]);
  });
});
