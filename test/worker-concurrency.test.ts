// Per-lane concurrency and the process-wide handler cap, observed by probe handlers that count how
// many of them run at once in this process.
import { z } from 'zod';
import { defineHandler } from '../apps/worker/src/handler';
import { abortableSleep } from '../apps/worker/src/handlers/sleep';
import { ConcurrencyProbe, startWorkerHarness, type WorkerHarness } from './fixtures/worker-harness';

function probeHandler(name: string, probes: ConcurrencyProbe[]) {
  return defineHandler({
    name,
    payload: z.object({ ms: z.number() }),
    run: async ({ ms }, { signal }) => {
      for (const probe of probes) probe.enter();
      try {
        await abortableSleep(ms, signal);
      } finally {
        for (const probe of probes) probe.leave();
      }
      return { ok: true };
    },
  });
}

describe('worker concurrency', () => {
  let harness: WorkerHarness | undefined;
  afterEach(async () => {
    await harness?.close();
    harness = undefined;
  });

  it('never runs more than the lane concurrency N at once when 3N slow jobs are queued', async () => {
    const N = 4;
    const probe = new ConcurrencyProbe();
    harness = await startWorkerHarness({
      lanesFile: { maxHandlersPerProcess: 32, lanes: { slow: { concurrency: N } } },
      handlers: [probeHandler('probe', [probe])],
    });
    const ids = await Promise.all(Array.from({ length: 3 * N }, () => harness!.add('slow', 'probe', { ms: 150 })));
    await harness.waitForEvent('job:completed', () => harness!.events['job:completed'].length === ids.length, 20_000);

    expect(probe.runs).toBe(3 * N);
    expect(probe.max).toBe(N);
  });

  it('never runs more handlers in one process than the process-wide cap, below the sum of lane concurrencies', async () => {
    const all = new ConcurrencyProbe();
    const perLane = { a: new ConcurrencyProbe(), b: new ConcurrencyProbe() };
    harness = await startWorkerHarness({
      lanesFile: { maxHandlersPerProcess: 3, lanes: { a: { concurrency: 4 }, b: { concurrency: 4 } } },
      handlers: [probeHandler('probe_a', [all, perLane.a]), probeHandler('probe_b', [all, perLane.b])],
    });
    const jobs = [
      ...Array.from({ length: 8 }, () => harness!.add('a', 'probe_a', { ms: 120 })),
      ...Array.from({ length: 8 }, () => harness!.add('b', 'probe_b', { ms: 120 })),
    ];
    await Promise.all(jobs);
    await harness.waitForEvent('job:completed', () => harness!.events['job:completed'].length === 16, 20_000);

    expect(all.runs).toBe(16);
    expect(all.max).toBe(3);
    expect(perLane.a.runs).toBe(8);
    expect(perLane.b.runs).toBe(8);
    // No lease sat waiting behind a backlog: the lanes lease within their share of the cap, and a
    // job a fetch from before a lane's share shrank delivers beyond it goes back to wait at once.
    // Running handlers are never preempted, so when the shares move, a lease within its lane's new
    // share may wait for one handler of the other lane to end (up to one 120 ms run); a lane that
    // hoarded leases would keep them waiting for several.
    const waited = harness.events['job:completed'].filter((e) => (e.slotWaitMs ?? 0) >= 2 * 120);
    expect(waited).toEqual([]);
    expect(harness.runtime.stats()).toMatchObject({ activeHandlers: 0, waitingForSlot: 0 });
  });
});
