// README promises that an isolated lane runs the same handlers as an ordinary one: a handler must
// not behave differently because it runs in a worker thread. Each case here runs one handler in an
// isolated lane and in an ordinary lane with the same settings and compares what bullpen recorded.
// The threads use the built worker (npx tsc -b apps/worker).
import { existsSync } from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './fixtures/worker-process';
import { startWorkerHarness, type WorkerHarness } from './fixtures/worker-harness';
import { waitUntil } from './support/wait';

const THREAD_MAIN = path.join(REPO_ROOT, 'apps/worker/dist/isolation/thread-main.js');
const PARITY_HANDLERS_DIR = path.join(REPO_ROOT, 'test/fixtures/parity-handlers');
const { THROWN_KINDS } = require(path.join(PARITY_HANDLERS_DIR, 'throw-value.js')) as { THROWN_KINDS: string[] };
const { RETURNED_KINDS } = require(path.join(PARITY_HANDLERS_DIR, 'return-value.js')) as { RETURNED_KINDS: string[] };
const { REPORTED_KINDS } = require(path.join(PARITY_HANDLERS_DIR, 'report-value.js')) as { REPORTED_KINDS: string[] };
/** Results JSON cannot hold: the attempt fails for good, in either lane. */
const UNSTORABLE = new Set(['bigint', 'cycle']);
/** Progress JSON cannot hold or has no form for: ctx.progress() rejects, in either lane. */
const REFUSED_PROGRESS = new Set(['bigint', 'nestedBigint', 'cycle', 'bareFunction', 'symbol']);

const LANE = {
  concurrency: 2,
  attempts: 2,
  timeoutMs: 5000,
  // A retry is decided, not run, within a test.
  backoff: { strategy: 'exponential', baseMs: 60_000, capMs: 60_000, jitter: 0 },
  errorRules: [
    { code: 'E_QUOTA', retryable: false, errorClass: 'validation' },
    { status: 418, retryable: true, errorClass: 'http_5xx' },
    { status: 409, retryable: true, errorClass: 'http_4xx' },
  ],
};

describe('an isolated lane and an ordinary lane running the same handler', () => {
  let harness: WorkerHarness;
  beforeAll(async () => {
    if (!existsSync(THREAD_MAIN)) throw new Error(`${THREAD_MAIN} is missing: run npx tsc -b apps/worker first`);
    harness = await startWorkerHarness({
      lanesFile: { maxHandlersPerProcess: 8, lanes: { iso: { ...LANE, isolated: true }, inproc: LANE } },
      env: { HANDLERS_DIR: PARITY_HANDLERS_DIR },
    });
  });
  afterAll(async () => {
    await harness.close();
  });

  /** Runs a job of `name` in the lane and resolves with how its first attempt ended, as recorded. */
  async function firstAttempt(lane: string, name: string, data: unknown) {
    const jobId = await harness.add(lane, name, data);
    const of = (e: { lane: string; jobId: string }) => e.lane === lane && e.jobId === jobId;
    const ended = await waitUntil(
      () => {
        const completed = harness.events['job:completed'].find(of);
        if (completed) return { outcome: 'completed' as const };
        const failed = harness.events['job:failed'].find(of);
        return failed && { outcome: 'failed' as const, errorClass: failed.errorClass, retryable: failed.retryable, willRetry: failed.willRetry, message: failed.message };
      },
      { timeoutMs: 30_000, what: `job ${jobId} of lane ${lane} to end its first attempt` },
    );
    const job = (await harness.queue(lane).getJob(jobId))!;
    return { ...ended, jobId, job };
  }

  /** The same job in both lanes, run at once. */
  async function inBothLanes(name: string, data: unknown) {
    const [isolated, inProcess] = await Promise.all([firstAttempt('iso', name, data), firstAttempt('inproc', name, data)]);
    return { isolated, inProcess };
  }

  it('gives an isolated handler what its payload schema\'s transforms make, as in process', async () => {
    const { isolated, inProcess } = await inBothLanes('decode', { b64: 'aGVsbG8=', url: 'https://example.com/a?b=1', at: '2026-01-02T03:04:05Z' });
    const expected = { isBuffer: true, text: 'hello', isUrl: true, host: 'example.com', isDate: true, year: 2026 };
    expect(inProcess.job.returnvalue).toEqual({ isMainThread: true, ...expected });
    expect(isolated.job.returnvalue).toEqual({ isMainThread: false, ...expected });
  });

  it('fails a payload its schema refuses before the isolated handler runs, as in process', async () => {
    const { isolated, inProcess } = await inBothLanes('decode', { b64: 'aGVsbG8=', url: 42, at: 'x' });
    expect(inProcess).toMatchObject({ outcome: 'failed', errorClass: 'validation', willRetry: false });
    expect({ ...isolated, jobId: undefined, job: undefined }).toEqual({ ...inProcess, jobId: undefined, job: undefined });
  });

  it.each(THROWN_KINDS)('classifies a thrown %s as the ordinary lane does: same error class, retry decision and message', async (kind) => {
    const { isolated, inProcess } = await inBothLanes('throw_value', { kind });
    const seen = (r: typeof isolated) => ({
      outcome: r.outcome,
      errorClass: 'errorClass' in r ? r.errorClass : undefined,
      retryable: 'retryable' in r ? r.retryable : undefined,
      willRetry: 'willRetry' in r ? r.willRetry : undefined,
      message: 'message' in r ? r.message : undefined,
      failedReason: r.job.failedReason,
    });
    expect(inProcess.outcome).toBe('failed');
    expect(seen(isolated)).toEqual(seen(inProcess));
    // Judged by the code or status of the cause, in both lanes.
    if (kind === 'fetchRefused') expect(seen(inProcess)).toMatchObject({ errorClass: 'network', retryable: true });
    if (kind === 'causeStatus404') expect(seen(inProcess)).toMatchObject({ errorClass: 'http_4xx', retryable: false });
  });

  it.each(RETURNED_KINDS)('stores a returned %s as the ordinary lane does', async (kind) => {
    const { isolated, inProcess } = await inBothLanes('return_value', { kind });
    const stored = (r: typeof isolated) => ({
      outcome: r.outcome,
      returnvalue: r.job.returnvalue,
      errorClass: 'errorClass' in r ? r.errorClass : undefined,
      willRetry: 'willRetry' in r ? r.willRetry : undefined,
      failedReason: r.job.failedReason,
    });
    expect(inProcess.outcome).toBe(UNSTORABLE.has(kind) ? 'failed' : 'completed');
    expect(stored(isolated)).toEqual(stored(inProcess));
  });

  it.each(REPORTED_KINDS)('stores a reported %s progress as the ordinary lane does', async (kind) => {
    const { isolated, inProcess } = await inBothLanes('report_value', { kind });
    const stored = (r: typeof isolated) => ({
      outcome: r.outcome,
      progress: r.job.progress,
      errorClass: 'errorClass' in r ? r.errorClass : undefined,
      willRetry: 'willRetry' in r ? r.willRetry : undefined,
      failedReason: r.job.failedReason,
    });
    expect(stored(inProcess)).toMatchObject(
      REFUSED_PROGRESS.has(kind) ? { outcome: 'failed', errorClass: 'validation', willRetry: false } : { outcome: 'completed' },
    );
    expect(stored(isolated)).toEqual(stored(inProcess));
  });
});
