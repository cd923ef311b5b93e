import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger, LifecycleLog } from '@bullpen/core';
import type { AttemptRef, WorkerEventMap } from './events';
import { recordLifecycle } from './lifecycle-log';
import { TypedEmitter } from './typed-emitter';

class Source extends TypedEmitter<WorkerEventMap> {
  constructor() {
    super((_event, err) => {
      throw err;
    });
  }
  send<K extends keyof WorkerEventMap>(event: K, payload: WorkerEventMap[K]): void {
    this.emit(event, payload);
  }
}

const ref = (attempt: number, jobId = '7'): AttemptRef => ({
  lane: 'critic',
  jobId,
  jobName: 'http',
  tenant: 'acme',
  attempt,
  maxAttempts: 3,
  workerId: 'w1',
});
const timings = { durationMs: 40, slotWaitMs: 2, handlerMs: 37 };
const NOW = Date.parse('2026-01-02T03:04:05.678Z');

describe('recordLifecycle', () => {
  let dir: string;
  let file: string;
  let source: Source;
  let log: LifecycleLog;
  let stop: () => void;

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-lifecycle-'));
    file = path.join(dir, 'events.jsonl');
    source = new Source();
    log = new LifecycleLog({
      file,
      maxBytes: 1024 * 1024,
      maxFiles: 1,
      logger: createLogger('worker', 'error'),
      onWriteFailed: () => undefined,
      onLinesDropped: () => undefined,
    });
    log.start();
    stop = recordLifecycle(source, log, () => NOW);
  });

  afterEach(async () => {
    stop();
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const lines = async () => {
    await log.flush();
    return readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  };
  const envelope = (event: string, attempt: number, jobId = '7') => ({
    ts: '2026-01-02T03:04:05.678Z',
    event,
    lane: 'critic',
    job_id: jobId,
    job_name: 'http',
    tenant: 'acme',
    attempt,
    worker_id: 'w1',
  });

  it('writes each lifecycle event of a job that is retried, reclaimed and completes, in the common envelope', async () => {
    source.send('job:started', { ...ref(1), enqueuedAt: NOW - 10, startedAt: NOW, attemptsStarted: 1 });
    source.send('job:failed', {
      ...ref(1),
      ...timings,
      errorClass: 'http_5xx',
      message: 'HTTP 503',
      retryable: true,
      willRetry: true,
      delayMs: 250,
      consumesAttempt: true,
    });
    source.send('job:backoff-applied', { ...ref(1), delayMs: 250, strategy: 'exponential', source: 'strategy', retryAfterMs: undefined });
    source.send('job:retry-budget-exhausted', { ...ref(1), action: 'defer', errorClass: 'http_5xx', retriesInWindow: 4, allowedInWindow: 4 });
    source.send('job:retrying', { ...ref(1), errorClass: 'http_5xx', delayMs: 250, nextAttempt: 2, reason: 'backoff', consumesAttempt: true });
    source.send('job:started', { ...ref(2), enqueuedAt: NOW - 10, startedAt: NOW, attemptsStarted: 3 });
    source.send('job:reclaimed', { ...ref(2), previousWorker: 'w0', lostStarts: 1 });
    source.send('job:completed', { ...ref(2), ...timings, waitMs: 5 });

    expect(await lines()).toEqual([
      { ...envelope('lease_created', 1), attempts_started: 1 },
      { ...envelope('failed', 1), error_class: 'http_5xx', final: false, retryable: true, run_ms: 40, delay_ms: 250 },
      { ...envelope('backoff_applied', 1), delay_ms: 250, strategy: 'exponential', source: 'strategy', retry_after_ms: null },
      { ...envelope('retry_budget_exhausted', 1), action: 'defer', error_class: 'http_5xx', retries_in_window: 4, allowed_in_window: 4 },
      { ...envelope('retry_scheduled', 1), reason: 'backoff', delay_ms: 250, error_class: 'http_5xx', next_attempt: 2 },
      { ...envelope('lease_created', 2), attempts_started: 3 },
      { ...envelope('reclaim_winner', 2), previous_worker: 'w0', lost_starts: 1 },
      { ...envelope('completed', 2), run_ms: 40, wait_ms: 5, slot_wait_ms: 2, handler_ms: 37 },
    ]);
  });

  it('marks a terminal failure final and adds max_retries_reached when the attempts ran out', async () => {
    source.send('job:failed', {
      ...ref(3),
      ...timings,
      errorClass: 'http_5xx',
      message: 'HTTP 503',
      retryable: true,
      willRetry: false,
      delayMs: null,
      consumesAttempt: true,
    });
    source.send('job:dead', { ...ref(3), errorClass: 'http_5xx', reason: 'attempts_exhausted', message: 'HTTP 503', attemptsMade: 3 });

    expect(await lines()).toEqual([
      { ...envelope('failed', 3), error_class: 'http_5xx', final: true, retryable: true, run_ms: 40, delay_ms: null },
      { ...envelope('max_retries_reached', 3), error_class: 'http_5xx', attempts_made: 3 },
    ]);
  });

  it('writes a final failed line for a job BullMQ failed without running it here (stalled too often)', async () => {
    source.send('job:dead', { ...ref(1, '9'), tenant: undefined, errorClass: 'stalled', reason: 'stalled', message: 'job stalled more than allowable limit', attemptsMade: 1 });

    expect(await lines()).toEqual([{ ...envelope('failed', 1, '9'), tenant: null, error_class: 'stalled', final: true, reason: 'stalled', run_ms: null }]);
  });

  it('stops writing once detached', async () => {
    stop();
    source.send('job:started', { ...ref(1), enqueuedAt: NOW, startedAt: NOW, attemptsStarted: 1 });
    await log.flush();
    expect(() => readFileSync(file, 'utf8')).toThrow(/ENOENT/);
  });
});
