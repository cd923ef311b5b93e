// A worker whose wall clock steps back while attempts run (NTP stepping it, a VM resumed): attempts
// are timed on the monotonic clock, so no duration it reports or writes to the lane stream is
// negative (the exporter once dropped whole batches of attempts for one negative run time).
import { LANE_EVENT, laneEventsKey, PermanentError } from '@bullpen/core';
import { defineHandler } from '../apps/worker/src/handler';
import { startWorkerHarness, type WorkerHarness } from './fixtures/worker-harness';
import { waitUntil } from './support/wait';

const STEP_MS = 60_000;

describe('worker timings across a wall-clock step back', () => {
  let harness: WorkerHarness | undefined;
  const realNow = Date.now.bind(Date);
  /** Steps this process's wall clock back by STEP_MS (once: later calls keep the same step). */
  const stepBack = () => jest.spyOn(Date, 'now').mockImplementation(() => realNow() - STEP_MS);

  afterEach(async () => {
    await harness?.close();
    harness = undefined;
    jest.restoreAllMocks();
  });

  /** The run times the worker wrote to the lane stream, read raw (the decoder would tidy a bad one). */
  async function runTimesWritten(h: WorkerHarness, lane: string): Promise<number[]> {
    const entries = await h.redis.xrange(laneEventsKey(h.config.prefix, lane), '-', '+');
    const runs: number[] = [];
    for (const [, fields] of entries) {
      const field = (name: string) => fields[fields.indexOf(name) + 1];
      if (field('event') === LANE_EVENT.completedAttempts) {
        for (const row of JSON.parse(field('attempts') ?? '[]') as unknown[][]) runs.push(row[4] as number);
      } else if (field('event') === LANE_EVENT.attempt) {
        runs.push(Number(field('runMs')));
      }
    }
    return runs;
  }

  it('reports no negative duration for attempts that end after the clock stepped back', async () => {
    harness = await startWorkerHarness({
      lanesFile: { lanes: { work: { concurrency: 1, attempts: 1 } } },
      handlers: [
        defineHandler({
          name: 'step_then_succeed',
          run: () => {
            stepBack();
            return 'ok';
          },
        }),
        defineHandler({
          name: 'step_then_fail',
          run: () => {
            stepBack();
            throw new PermanentError('failed after the step', 'handler');
          },
        }),
      ],
    });
    const h = harness;
    const ok = await h.add('work', 'step_then_succeed', {});
    const failed = await h.add('work', 'step_then_fail', {});
    const completed = await h.waitForEvent('job:completed', (e) => e.jobId === ok);
    const dead = await h.waitForEvent('job:failed', (e) => e.jobId === failed);
    for (const timings of [completed, dead]) {
      expect(timings.durationMs).toBeGreaterThanOrEqual(0);
      expect(timings.handlerMs).toBeGreaterThanOrEqual(0);
      expect(timings.slotWaitMs).toBeGreaterThanOrEqual(0);
    }
    const runs = await waitUntil(async () => {
      const written = await runTimesWritten(h, 'work');
      return written.length === 2 ? written : undefined;
    }, { what: 'both attempts in the lane stream' });
    expect(runs.every((ms) => ms >= 0 && ms < STEP_MS)).toBe(true);
  });
});
