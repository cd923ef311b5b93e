// BullMQ's Worker checks its concurrency only when its main loop runs: after a fetch, or when one
// of its jobs ends. A lane whose every allowed job is running waits in that loop for one of them to
// end, so a concurrency raised meanwhile would go unused until then.
import type { Worker } from 'bullmq';

/** The part of BullMQ's Worker (5.x, 6.x) that its own resume() uses to wake its main loop. */
interface FetchLoopInternals {
  mainLoopQueue?: { add(promise: Promise<unknown>): void } | null;
}

/**
 * Wakes the Worker's main loop, as its resume() does, so that it fetches up to its concurrency now.
 * Without that internal (another BullMQ), the raise takes effect when the lane's next job ends.
 */
export function wakeFetchLoop(worker: Worker): void {
  const queue = (worker as unknown as FetchLoopInternals).mainLoopQueue;
  if (queue && typeof queue.add === 'function') queue.add(Promise.resolve());
}
