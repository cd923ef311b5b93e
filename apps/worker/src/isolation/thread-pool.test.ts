// The threads use the built worker (npx tsc -b apps/worker).
import path from 'node:path';
import { createLogger, loadConfig } from '@bullpen/core';
import { waitUntil } from '../../../../test/support/wait';
import { ThreadPool, ThreadPoolClosedError, type ThreadTask } from './thread-pool';
import { ThreadStartError } from './thread-start-error';

/** A HANDLERS_DIR that fails to load (it registers the built-in `sleep` again). */
const BAD_HANDLERS_DIR = path.resolve(__dirname, '../../../../test/fixtures/bad-handlers');

const sleepTask = (jobId: string, ms: number): ThreadTask => ({
  name: 'sleep',
  payload: { ms },
  ctx: { jobId, jobName: 'sleep', lane: 'iso', attempt: 1, maxAttempts: 1, tenant: undefined },
});

function pool(size: number, handlersDir?: string): ThreadPool {
  return new ThreadPool({
    lane: 'iso',
    size,
    data: { handlersDir, httpAllowedHosts: [], logLevel: 'error', tracing: loadConfig({}).tracing, serviceName: 'bullpen-worker' },
    logger: createLogger('worker', 'error'),
    startTimeoutMs: 60_000,
  });
}

describe('an isolated lane\'s thread pool', () => {
  it('fails the calls it stops on closing with a ThreadPoolClosedError, running or waiting for a thread', async () => {
    const threads = pool(1);
    const running = (await threads.acquire()).run(sleepTask('1', 60_000), new AbortController().signal, () => undefined);
    const waiting = threads.acquire();
    const outcomes = Promise.allSettled([running.result, waiting]);
    await waitUntil(() => threads.stats().busy === 1, { what: 'the first call to run' });

    await threads.close();

    const [first, second] = await outcomes;
    expect(first).toMatchObject({ status: 'rejected', reason: expect.any(ThreadPoolClosedError) });
    expect(second).toMatchObject({ status: 'rejected', reason: expect.any(ThreadPoolClosedError) });
    expect(threads.stats()).toMatchObject({ alive: 0, busy: 0 });
  });

  it('fails a caller still waiting for its thread to start with a ThreadPoolClosedError when the pool closes', async () => {
    const threads = pool(1);
    threads.start();
    const outcome = threads.acquire().catch((err: unknown) => err);
    expect(threads.stats()).toMatchObject({ alive: 1, starting: 1 });
    await threads.close();
    expect(await outcome).toBeInstanceOf(ThreadPoolClosedError);
    expect(threads.stats()).toMatchObject({ alive: 0 });
  });

  it('fails the caller waiting for a thread whose handlers cannot load with a ThreadStartError, and does not start it again for nobody', async () => {
    const threads = pool(2, BAD_HANDLERS_DIR);
    const err = await threads.acquire().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ThreadStartError);
    expect(err).toMatchObject({ code: 'thread_start_failed', errorClass: 'thread_start', retryable: true });
    expect((err as Error).message).toMatch(/^lane iso: a handler thread could not load its handlers: HANDLERS_DIR/);
    // One thread was started for the one caller, and none since it failed.
    expect(threads.stats()).toMatchObject({ alive: 0, startedTotal: 1 });
    await threads.close();
  });
});
