// `sleep` {ms}: waits without using CPU, and stops early when its signal aborts.
import { z } from 'zod';
import { defineHandler } from '../handler';

export const MAX_SLEEP_MS = 24 * 3600 * 1000;

export const sleepHandler = defineHandler({
  name: 'sleep',
  payload: z.object({ ms: z.number().int().min(0).max(MAX_SLEEP_MS) }).strict(),
  run: ({ ms }, { signal }) => abortableSleep(ms, signal).then(() => ({ sleptMs: ms })),
});

export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
