// `cpu` {ms}: keeps a core busy for ms. It spins in short slices and yields between them, so that
// timers (lock renewal, the attempt timeout) still run and an aborted signal stops it.
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { z } from 'zod';
import { defineHandler } from '../handler';

/** Longest stretch the event loop is blocked at a time. */
export const CPU_SLICE_MS = 10;

export const cpuHandler = defineHandler({
  name: 'cpu',
  payload: z.object({ ms: z.number().int().min(0).max(3_600_000) }).strict(),
  run: async ({ ms }, { signal }) => {
    const end = performance.now() + ms;
    let iterations = 0;
    while (performance.now() < end) {
      signal.throwIfAborted();
      const sliceEnd = Math.min(end, performance.now() + CPU_SLICE_MS);
      while (performance.now() < sliceEnd) iterations += 1;
      await yieldToLoop();
    }
    return { busyMs: ms, iterations };
  },
});
