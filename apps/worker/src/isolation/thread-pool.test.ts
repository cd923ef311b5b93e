// The threads use the built worker (npx tsc -b apps/worker).
import { createLogger, loadConfig } from '@bullpen/core';
import { waitUntil } from '../../../../test/support/wait';
import { ThreadPool, ThreadPoolClosedError, type ThreadTask } from './thread-pool';

const sleepTask = (jobId: string, ms: number): ThreadTask => ({
  name: 'sleep',
  payload: { ms },
  ctx: { jobId, jobName: 'sleep', lane: 'iso', attempt: 1, maxAttempts: 1, tenant: undefined },
});

function pool(size: number): ThreadPool {
  return new ThreadPool({
    lane: 'iso',
    size,
    data: { handlersDir: undefined, httpAllowedHosts: [], logLevel: 'error', tracing: loadConfig({}).tracing, serviceName: 'bullpen-worker' },
    logger: createLogger('worker', 'error'),
  });
}

describe('an isolated lane\'s thread pool', () => {
  it('fails the calls it stops on closing with a ThreadPoolClosedError, running or waiting for a thread', async () => {
    const threads = pool(1);
    const noProgress = () => undefined;
    const running = threads.run(sleepTask('1', 60_000), new AbortController().signal, noProgress);
    const waiting = threads.run(sleepTask('2', 10), new AbortController().signal, noProgress);
    const outcomes = Promise.allSettled([running.result, waiting.result]);
    // Closing only once the first call is in its thread: then it is the running one.
    await waitUntil(() => threads.stats().busy === 1, { what: 'the first call to run' });

    await threads.close();

    const [first, second] = await outcomes;
    expect(first).toMatchObject({ status: 'rejected', reason: expect.any(ThreadPoolClosedError) });
    expect(second).toMatchObject({ status: 'rejected', reason: expect.any(ThreadPoolClosedError) });
    expect(threads.stats()).toMatchObject({ alive: 0, busy: 0 });
  });

  it('fails a call that reaches its thread as the pool closes with a ThreadPoolClosedError', async () => {
    const threads = pool(1);
    const call = threads.run(sleepTask('1', 10), new AbortController().signal, () => undefined);
    const outcome = call.result.catch((err: unknown) => err);
    await threads.close();
    expect(await outcome).toBeInstanceOf(ThreadPoolClosedError);
  });
});
