import { CancelledError, createLogger } from '@bullpen/core';
import type { Job } from 'bullmq';
import { captureLogs } from '../../../test/support/logs';
import { AttemptAbort } from './attempt-abort';
import type { AttemptRef } from './events';
import { defineHandler, type HandlerContext } from './handler';
import { callHandler, type HandlerCallDeps } from './handler-call';

const ref: AttemptRef = { lane: 'emails', jobId: 'job-7', jobName: 'send', tenant: 'acme', attempt: 2, maxAttempts: 5, workerId: 'w-1' };

function setup() {
  const logger = createLogger('bullpen-worker', 'info');
  const lines = captureLogs(logger);
  const deps: HandlerCallDeps = { logger, escalationFactor: 2, emit: () => undefined, abandon: () => 0, ignoredSignalTotal: () => 0 };
  const updateProgress = jest.fn(async () => undefined);
  const job = { name: ref.jobName, updateProgress } as unknown as Job<unknown, unknown, string>;
  return { deps, job, lines, updateProgress };
}

describe('callHandler', () => {
  it('gives an in-process handler the attempt it runs: ids, lane, attempt numbers and tenant', async () => {
    const { deps, job } = setup();
    const seen: Array<Partial<HandlerContext>> = [];
    const handler = defineHandler({
      name: 'send',
      run: (_data, ctx) => {
        const { jobId, jobName, lane, attempt, maxAttempts, tenant } = ctx;
        seen.push({ jobId, jobName, lane, attempt, maxAttempts, tenant });
        return 'sent';
      },
    });

    await expect(callHandler(deps, job, handler, {}, ref, 1000, new AttemptAbort())).resolves.toBe('sent');
    await callHandler(deps, job, handler, {}, { ...ref, jobId: 'job-8', attempt: 1, tenant: undefined }, 1000, new AttemptAbort());

    expect(seen).toEqual([
      { jobId: 'job-7', jobName: 'send', lane: 'emails', attempt: 2, maxAttempts: 5, tenant: 'acme' },
      { jobId: 'job-8', jobName: 'send', lane: 'emails', attempt: 1, tenant: undefined, maxAttempts: 5 },
    ]);
  });

  it("hands the handler its own attempt's signal, which aborts when the attempt is cancelled", async () => {
    const { deps, job } = setup();
    const abort = new AttemptAbort();
    const signals: AbortSignal[] = [];
    const handler = defineHandler({
      name: 'send',
      run: (_data, { signal }) =>
        new Promise((_resolve, reject) => {
          signals.push(signal);
          signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
        }),
    });

    const call = callHandler(deps, job, handler, {}, ref, 60_000, abort);
    const otherAbort = new AttemptAbort();
    const other = callHandler(deps, job, handler, {}, { ...ref, jobId: 'job-8' }, 60_000, otherAbort);
    await new Promise((resolve) => setImmediate(resolve));
    abort.abort('operator asked');

    await expect(call).rejects.toBeInstanceOf(CancelledError);
    expect(signals[0]?.aborted).toBe(true);
    expect(signals[1]?.aborted).toBe(false);
    expect(signals[0]).not.toBe(signals[1]);
    otherAbort.abort('done');
    await expect(other).rejects.toBeInstanceOf(CancelledError);
  });

  it("gives the handler a logger whose lines carry the job's id and attempt", async () => {
    const { deps, job, lines } = setup();
    const handler = defineHandler({
      name: 'send',
      run: (_data, { logger }) => {
        logger.info('talking to the mail server');
        return undefined;
      },
    });

    await callHandler(deps, job, handler, {}, ref, 1000, new AttemptAbort());

    expect(lines).toEqual([expect.objectContaining({ msg: 'talking to the mail server', service: 'bullpen-worker', job_id: 'job-7', attempt: 2 })]);
  });

  it('hands an in-process handler a context it can spread: each documented field its own, nothing else', async () => {
    const { deps, job, lines } = setup();
    let ctx: HandlerContext | undefined;
    let copy: Record<string, unknown> = {};
    const handler = defineHandler({
      name: 'send',
      run: (_data, given) => {
        ctx = given;
        copy = { ...given };
        (copy.logger as HandlerContext['logger']).info('from a copy of ctx');
        return undefined;
      },
    });

    await callHandler(deps, job, handler, {}, ref, 1000, new AttemptAbort());

    expect(Object.keys(copy).sort()).toEqual(['attempt', 'jobId', 'jobName', 'lane', 'logger', 'maxAttempts', 'progress', 'signal', 'tenant']);
    expect(copy).toMatchObject({ jobId: 'job-7', jobName: 'send', lane: 'emails', attempt: 2, maxAttempts: 5, tenant: 'acme' });
    expect(copy.signal).toBe(ctx!.signal);
    expect((copy.signal as AbortSignal).aborted).toBe(false);
    expect(copy.logger).toBe(ctx!.logger);
    expect(lines).toEqual([expect.objectContaining({ msg: 'from a copy of ctx', job_id: 'job-7', attempt: 2 })]);
  });

  it("keeps bullpen's fields in a handler's log line, and a field the handler gives the same name under handler_<name>", async () => {
    const { deps, job, lines } = setup();
    // As the runtime gives it: the lane's logger.
    deps.logger = deps.logger.child({ lane: 'emails' });
    const handler = defineHandler({
      name: 'send',
      run: (_data, { logger }) => {
        logger.info('sent', { lane: 'mine', job_id: 'order-9', attempt: 'third', trace_id: 'abc', msg: 'note', service: 'mailer', ts: 'then', to: 'a@b.c' });
        return undefined;
      },
    });

    await callHandler(deps, job, handler, {}, ref, 1000, new AttemptAbort());

    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      msg: 'sent',
      service: 'bullpen-worker',
      lane: 'emails',
      job_id: 'job-7',
      attempt: 2,
      ts: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/),
      to: 'a@b.c',
      handler_lane: 'mine',
      handler_job_id: 'order-9',
      handler_attempt: 'third',
      handler_trace_id: 'abc',
      handler_msg: 'note',
      handler_service: 'mailer',
      handler_ts: 'then',
    });
    expect(lines[0]).not.toHaveProperty('trace_id');
  });

  it('records progress on the job while the attempt runs and ignores it once the attempt is over', async () => {
    const { deps, job, updateProgress } = setup();
    let progress: HandlerContext['progress'] | undefined;
    const handler = defineHandler({
      name: 'send',
      run: async (_data, ctx) => {
        progress = ctx.progress;
        await ctx.progress(40);
        return undefined;
      },
    });

    await callHandler(deps, job, handler, {}, ref, 1000, new AttemptAbort());
    await progress?.(90);

    expect(updateProgress.mock.calls).toEqual([[40]]);
  });
});
