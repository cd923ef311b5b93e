// `cpu` {ms, ignoreSignal?}: keeps a core busy for ms. It spins in short slices and yields between
// them, so that timers (lock renewal, the attempt timeout) still run and an aborted signal stops it.
// With ignoreSignal it keeps spinning after its signal aborts: a handler that ignores its timeout,
// for demos and tests of the timeout's escalation (abandoned in process, terminated when isolated).
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { z } from 'zod';
import { defineHandler } from '../handler';

/** Longest stretch the event loop is blocked at a time. */
export const CPU_SLICE_MS = 10;

export const cpuHandler = defineHandler({
  name: 'cpu',
  payload: z.object({ ms: z.number().int().min(0).max(3_600_000), ignoreSignal: z.boolean().default(false) }).strict(),
  run: async ({ ms, ignoreSignal }, { signal }) => {
    const end = performance.now() + ms;
    let iterations = 0;
    while (performance.now() < end) {
      if (!ignoreSignal) signal.throwIfAborted();
      const sliceEnd = Math.min(end, performance.now() + CPU_SLICE_MS);
      while (performance.now() < sliceEnd) iterations += 1;
      await yieldToLoop();
    }
    return { busyMs: ms, iterations };
  },
});
