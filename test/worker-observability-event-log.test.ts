// The lifecycle event log with real jobs: the worker writes each job's lifecycle in the common
// envelope, `bullpen report` reads it back, the file rotates at EVENT_LOG_MAX_BYTES, and a path
// that cannot be written does not stop jobs: the error is counted in a metric and logged once.
import { execFileSync } from 'node:child_process';
import { closeSync, constants, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLaneQueue, createLogger, createRedis, wrapJobData, type BullpenConfig } from '@bullpen/core';
import type { Queue } from 'bullmq';
import type IORedis from 'ioredis';
import { buildReport } from '../apps/cli/src/report';
import { buildRegistry } from '../apps/worker/src/default-registry';
import { WorkerRuntime } from '../apps/worker/src/runtime';
import { WorkerMetrics } from '../apps/worker/src/worker-metrics';
import { cleanupPrefix, standaloneUrl, testConfig } from './support/config';
import { captureLogs } from './support/logs';
import { parseExposition, total } from './support/prometheus';
import { waitUntil } from './support/wait';
import { ENVELOPE, expectRotatedLog } from './support/event-log-files';


interface Running {
  config: BullpenConfig;
  runtime: WorkerRuntime;
  metrics: WorkerMetrics;
  logs: Array<Record<string, unknown>>;
  /** Adds jobs and waits until each has finished; returns their ids in order. */
  run(jobs: Array<{ name: string; data: unknown }>): Promise<string[]>;
  states(ids: string[]): Promise<string[]>;
  close(): Promise<void>;
}

async function startWorker(env: Record<string, string>): Promise<Running> {
  const config = testConfig({
    env: { WORKER_ID: 'w-eventlog', ...env },
    lanesFile: { lanes: { work: { concurrency: 4, attempts: 2, backoff: { strategy: 'fixed', baseMs: 10, capMs: 100 } } } },
  });
  const logger = createLogger('worker', 'warn');
  const logs = captureLogs(logger);
  const runtime = new WorkerRuntime({ config, logger, registry: buildRegistry(undefined) });
  const metrics = new WorkerMetrics(runtime);
  metrics.start();
  await runtime.start();
  const redis: IORedis = createRedis(standaloneUrl(config), 'worker', 'bullpen:test');
  const queue: Queue = createLaneQueue(config, 'work', redis);
  let closed = false;
  return {
    config,
    runtime,
    metrics,
    logs,
    async run(jobs) {
      const added = await queue.addBulk(jobs.map((j) => ({ name: j.name, data: wrapJobData(j.data, { v: 1, tenant: 'acme' }) })));
      const ids = added.map((job) => job.id as string);
      await waitUntil(
        async () => (await Promise.all(ids.map((id) => queue.getJobState(id)))).every((s) => s === 'completed' || s === 'failed'),
        { what: 'the jobs to finish' },
      );
      return ids;
    },
    states: (ids) => Promise.all(ids.map((id) => queue.getJobState(id))),
    async close() {
      if (closed) return;
      closed = true;
      await runtime.close(5000);
      metrics.close();
      await queue.close();
      await redis.quit();
      await cleanupPrefix(config.prefix);
    },
  };
}

describe('the lifecycle event log', () => {
  let dir: string;
  const running: Running[] = [];
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-eventlog-'));
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((r) => r.close()));
    rmSync(dir, { recursive: true, force: true });
  });
  const start = async (env: Record<string, string>) => {
    const r = await startWorker(env);
    running.push(r);
    return r;
  };
  const readLines = (file: string) =>
    readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);

  it('writes every lifecycle event of real jobs in the common envelope, and bullpen report reads the right numbers', async () => {
    const file = path.join(dir, 'events.jsonl');
    const worker = await start({ EVENT_LOG_FILE: file });
    const t0 = Date.now();
    const [ok, flaky, permanent, exhausted] = await worker.run([
      { name: 'noop', data: {} },
      { name: 'fail', data: { kind: 'retryable', succeedOnAttempt: 2 } },
      { name: 'fail', data: { kind: 'permanent' } },
      { name: 'fail', data: { kind: 'retryable' } },
    ]);
    await worker.close(); // writes what is buffered

    const lines = readLines(file);
    for (const line of lines) {
      expect(Object.keys(line).slice(0, ENVELOPE.length)).toEqual(ENVELOPE);
      expect(line).toMatchObject({ lane: 'work', tenant: 'acme', worker_id: 'w-eventlog' });
      expect(new Date(line.ts as string).toISOString()).toBe(line.ts);
    }
    const of = (id: string | undefined) => lines.filter((l) => l.job_id === id).map((l) => `${l.event}@${l.attempt}`);
    expect(of(ok)).toEqual(['lease_created@1', 'completed@1']);
    expect(of(flaky)).toEqual(['lease_created@1', 'failed@1', 'backoff_applied@1', 'retry_scheduled@1', 'lease_created@2', 'completed@2']);
    expect(of(permanent)).toEqual(['lease_created@1', 'failed@1']);
    expect(of(exhausted)).toEqual([
      'lease_created@1',
      'failed@1',
      'backoff_applied@1',
      'retry_scheduled@1',
      'lease_created@2',
      'failed@2',
      'max_retries_reached@2',
    ]);
    const line = (id: string | undefined, event: string, attempt: number) =>
      lines.find((l) => l.job_id === id && l.event === event && l.attempt === attempt);
    expect(line(ok, 'completed', 1)).toMatchObject({ job_name: 'noop', run_ms: expect.any(Number) });
    expect(line(flaky, 'failed', 1)).toMatchObject({ error_class: 'handler', final: false });
    expect(line(flaky, 'retry_scheduled', 1)).toMatchObject({ reason: 'backoff', delay_ms: 10 });
    expect(line(flaky, 'backoff_applied', 1)).toMatchObject({ delay_ms: 10, strategy: 'fixed' });
    expect(line(permanent, 'failed', 1)).toMatchObject({ error_class: 'handler', final: true });
    expect(line(exhausted, 'failed', 2)).toMatchObject({ final: true });

    const report = await buildReport([file], { from: t0 - 1000, to: Date.now() + 1000 });
    expect(report.corruptLines).toBe(0);
    expect(report.groups).toEqual([
      expect.objectContaining({ lane: 'work', tenant: 'acme', started: 4, succeeded: 2, failed: 2, retried: 2, errorRate: 0.5 }),
    ]);
  });

  it('rotates at EVENT_LOG_MAX_BYTES and keeps EVENT_LOG_MAX_FILES rotated files', async () => {
    const file = path.join(dir, 'events.jsonl');
    const worker = await start({ EVENT_LOG_FILE: file, EVENT_LOG_MAX_BYTES: '1024', EVENT_LOG_MAX_FILES: '2' });
    // About 500 bytes of lines per job: 40 jobs pass the limit many times over.
    const ids = await worker.run(Array.from({ length: 40 }, () => ({ name: 'noop', data: {} })));
    await worker.close();

    const lines = expectRotatedLog(file, 1024, 2);
    // Oldest lines went with the files rotated away; the newest are kept.
    const completed = new Set(lines.filter((l) => l.event === 'completed').map((l) => l.job_id));
    expect(completed.size).toBeGreaterThan(0);
    expect(completed.size).toBeLessThan(ids.length);
  });

  it('keeps completing jobs while the disk is stuck, counts the lines its full buffer drops in a metric and logs that once', async () => {
    // Opening a FIFO for writing waits for a reader, as a write to a hung disk waits.
    const fifo = path.join(dir, 'events.jsonl');
    execFileSync('mkfifo', [fifo]);
    const worker = await start({ EVENT_LOG_FILE: fifo, EVENT_LOG_MAX_BUFFERED_LINES: '4' });
    const scrapeDropped = async () => total(parseExposition(await worker.metrics.registry.metrics()), 'bullpen_worker_event_log_dropped_lines_total');
    expect(await scrapeDropped()).toBe(0);
    try {
      const first = await worker.run(Array.from({ length: 5 }, () => ({ name: 'noop', data: {} })));
      const second = await worker.run(Array.from({ length: 5 }, () => ({ name: 'noop', data: {} })));
      expect(await worker.states([...first, ...second])).toEqual(Array(10).fill('completed'));
      // lease_created + completed per job: 20 lines, of which the stuck write holds some and the
      // buffer four; the rest are dropped, and counted.
      await waitUntil(async () => (await scrapeDropped()) >= 12, { what: 'the dropped lines to be counted' });
      expect(await scrapeDropped()).toBe(worker.runtime.stats().eventLogDroppedLinesTotal);
      expect(worker.runtime.stats().eventLogErrorsTotal).toBe(0);
      const reported = worker.logs.filter((l) => String(l.msg).startsWith('lifecycle event log: write buffer full'));
      expect(reported).toEqual([expect.objectContaining({ level: 'warn', file: fifo, max_buffered_lines: 4 })]);
    } finally {
      await worker.close();
      // A reader lets the blocked open finish, so that nothing is left waiting.
      closeSync(openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK));
    }
  });

  it('keeps completing jobs when the log cannot be written, counts the errors in a metric and logs them once', async () => {
    const blocker = path.join(dir, 'not-a-directory');
    writeFileSync(blocker, 'a file where the log directory should be\n');
    const worker = await start({ EVENT_LOG_FILE: path.join(blocker, 'events.jsonl') });
    const scrapeErrors = async () => total(parseExposition(await worker.metrics.registry.metrics()), 'bullpen_worker_event_log_errors_total');
    expect(await scrapeErrors()).toBe(0);

    const first = await worker.run(Array.from({ length: 5 }, () => ({ name: 'noop', data: {} })));
    await waitUntil(() => worker.runtime.stats().eventLogErrorsTotal >= 1, { what: 'a failed write' });
    const second = await worker.run(Array.from({ length: 5 }, () => ({ name: 'noop', data: {} })));
    await waitUntil(() => worker.runtime.stats().eventLogErrorsTotal >= 2, { what: 'a second failed write' });

    expect(await worker.states([...first, ...second])).toEqual(Array(10).fill('completed'));
    // lease_created + completed per job; the last lines may still be in the writer's buffer.
    await waitUntil(() => worker.runtime.stats().eventLogDroppedLinesTotal >= 20, { what: 'every line of the 10 jobs to be dropped' });
    const stats = worker.runtime.stats();
    expect(await scrapeErrors()).toBe(stats.eventLogErrorsTotal);
    const reported = worker.logs.filter((l) => String(l.msg).startsWith('lifecycle event log: write failed'));
    expect(reported).toEqual([expect.objectContaining({ level: 'error', code: 'EEXIST', file: path.join(blocker, 'events.jsonl') })]);
    expect(existsSync(path.join(blocker, 'events.jsonl'))).toBe(false);
  });
});
