// The exporter's lifecycle event log with real jobs: a worker runs them, the exporter process reads
// the lane streams and writes the same lines as the worker's own log (same envelope and fields;
// null for what the streams do not carry), `bullpen report` reads it, it rotates at
// EVENT_LOG_MAX_BYTES, a SIGKILL loses no line, a path that cannot be written does not stop
// the exporter counting (the failed writes are counted in a metric and logged once), and entries
// trimmed before it read them are said in an events_lost line that `bullpen report` warns of.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLaneQueue, createLogger, createRedis, laneEventsKey, wrapJobData } from '@bullpen/core';
import type { Queue } from 'bullmq';
import type IORedis from 'ioredis';
import { buildReport } from '../apps/cli/src/report';
import { buildRegistry } from '../apps/worker/src/default-registry';
import { WorkerRuntime } from '../apps/worker/src/runtime';
import { cleanupPrefix, testConfig } from './support/config';
import { spawnExporter, total, type ExporterProcess } from './support/prometheus';
import { redisUrl, testPrefix, waitUntil } from './support/wait';
import { ENVELOPE, expectRotatedLog, readLogLines, type LogLine } from './support/event-log-files';

const LANES = {
  lanes: {
    // A budget that grants the retries of the 300 jobs failing at once below: with the default
    // (160 retries per 10 s for 300 first attempts) the rest would wait for budget, past the waits.
    work: {
      concurrency: 4,
      attempts: 3,
      backoff: { strategy: 'fixed', baseMs: 10, capMs: 100 },
      retryBudget: { ratio: 1, minRetriesPerSecond: 10, windowSeconds: 10, onExhausted: 'defer' },
    },
    // Rate-limited failures are retried under the same attempt number.
    limited: { concurrency: 4, attempts: 3, rateLimitedConsumesAttempt: false, backoff: { strategy: 'fixed', baseMs: 10, capMs: 100 } },
  },
};

describe("the exporter's lifecycle event log", () => {
  let dir: string;
  let lanesFile: string;
  let prefix: string;
  let redis: IORedis;
  let queue: Queue;
  const closers: Array<() => Promise<unknown>> = [];
  const exporters: ExporterProcess[] = [];

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-exporter-eventlog-'));
    lanesFile = path.join(dir, 'lanes.json');
    writeFileSync(lanesFile, JSON.stringify(LANES));
    prefix = testPrefix('xl');
    redis = createRedis(redisUrl(), 'worker', 'bullpen:test');
    queue = createLaneQueue(testConfig({ prefix, env: { LANES_FILE: lanesFile } }), 'work', redis);
  });

  afterEach(async () => {
    await Promise.all(exporters.splice(0).map((e) => e.kill('SIGKILL')));
    for (const close of closers.splice(0).reverse()) await close().catch(() => undefined);
    await queue.close();
    await redis.quit();
    await cleanupPrefix(prefix);
    rmSync(dir, { recursive: true, force: true });
  });

  const startWorker = async (env: Record<string, string> = {}) => {
    const config = testConfig({ prefix, env: { LANES_FILE: lanesFile, WORKER_ID: 'w-xl', ...env } });
    const runtime = new WorkerRuntime({ config, logger: createLogger('worker', 'error'), registry: buildRegistry(undefined) });
    await runtime.start();
    let closed = false;
    const close = async () => {
      if (closed) return;
      closed = true;
      await runtime.close(5000);
    };
    closers.push(close);
    return { close };
  };
  const startExporter = async (env: Record<string, string>) => {
    // A short leadership lease: an exporter SIGKILLed here cannot release it, and the next one
    // (another pid) takes the lead only once it has expired.
    const exporter = await spawnExporter({ REDIS_URL: redisUrl(), BULLPEN_PREFIX: prefix, LANES_FILE: lanesFile, EXPORTER_LEADER_LEASE_MS: '1000', ...env });
    exporters.push(exporter);
    return exporter;
  };
  /** Adds jobs of tenant acme and waits until each has finished; returns their ids in order. */
  const run = async (jobs: Array<{ name: string; data: unknown }>): Promise<string[]> => {
    const added = await queue.addBulk(jobs.map((j) => ({ name: j.name, data: wrapJobData(j.data, { v: 1, tenant: 'acme' }) })));
    const ids = added.map((job) => job.id as string);
    await waitUntil(
      async () => (await Promise.all(ids.map((id) => queue.getJobState(id)))).every((s) => s === 'completed' || s === 'failed'),
      { what: 'the jobs to finish' },
    );
    return ids;
  };
  /** Attempts the exporter has counted (every bp:attempt entry), from its metrics. */
  const attemptsCounted = async (exporter: ExporterProcess) => total(await exporter.samples(), 'bullpen_job_attempts_total');
  const key = (l: LogLine) => `${String(l.job_id)} ${String(l.event)}@${String(l.attempt)}`;

  it('writes the lines of a job that fails twice then succeeds and of one that dies, as the worker does, and bullpen report reads them', async () => {
    const file = path.join(dir, 'exporter.jsonl');
    const workerFile = path.join(dir, 'worker.jsonl');
    const exporter = await startExporter({ EVENT_LOG_FILE: file });
    const worker = await startWorker({ EVENT_LOG_FILE: workerFile });
    const t0 = Date.now();
    const [flaky, dies] = await run([
      { name: 'fail', data: { kind: 'retryable', succeedOnAttempt: 3 } },
      { name: 'fail', data: { kind: 'retryable' } },
    ]);
    const of = (lines: LogLine[], id: string | undefined) => lines.filter((l) => l.job_id === id).map((l) => `${String(l.event)}@${String(l.attempt)}`);
    const retried = (n: number) => [`lease_created@${n}`, `failed@${n}`, `backoff_applied@${n}`, `retry_scheduled@${n}`];
    const flakyLines = [...retried(1), ...retried(2), 'lease_created@3', 'completed@3'];
    const diesLines = [...retried(1), ...retried(2), 'lease_created@3', 'failed@3', 'max_retries_reached@3'];
    // The lines are on disk once the exporter has counted the entries they come from.
    await waitUntil(() => of(readLogLines(file), dies).length === diesLines.length && of(readLogLines(file), flaky).length === flakyLines.length, {
      what: "the exporter's lines of both jobs",
    });
    await worker.close();

    const lines = readLogLines(file);
    expect(of(lines, flaky)).toEqual(flakyLines);
    expect(of(lines, dies)).toEqual(diesLines);
    for (const line of lines) {
      expect(Object.keys(line).slice(0, ENVELOPE.length)).toEqual(ENVELOPE);
      expect(line).toMatchObject({ lane: 'work', job_name: 'fail', tenant: 'acme', worker_id: 'w-xl', stream_id: expect.stringMatching(/^\d+-\d+$/) });
      expect(new Date(line.ts as string).toISOString()).toBe(line.ts);
    }
    expect(lines.find((l) => key(l) === `${dies} failed@3`)).toMatchObject({ error_class: 'handler', final: true });
    expect(lines.find((l) => key(l) === `${flaky} failed@1`)).toMatchObject({ error_class: 'handler', final: false, delay_ms: 10 });
    expect(lines.find((l) => key(l) === `${dies} max_retries_reached@3`)).toMatchObject({ error_class: 'handler', attempts_made: 3 });
    expect(lines.find((l) => key(l) === `${flaky} backoff_applied@2`)).toMatchObject({ delay_ms: 10, strategy: 'fixed', source: 'strategy' });
    expect(lines.find((l) => key(l) === `${flaky} retry_scheduled@2`)).toMatchObject({ reason: 'backoff', next_attempt: 3 });

    // The same kinds of line as the worker's own log, with the same fields in the same order, and
    // the same values wherever the exporter knows them.
    const workerLines = new Map(readLogLines(workerFile).map((l) => [key(l), l]));
    for (const line of lines) {
      const { stream_id: _streamId, ...fields } = line;
      const own = workerLines.get(key(line));
      expect({ line: key(line), keys: Object.keys(fields) }).toEqual({ line: key(line), keys: Object.keys(own ?? {}) });
      for (const [field, value] of Object.entries(fields)) {
        if (field === 'ts' || value === null) continue;
        expect({ line: key(line), field, value }).toEqual({ line: key(line), field, value: own?.[field] });
      }
    }

    const window = { from: t0 - 1000, to: Date.now() + 1000 };
    const report = await buildReport([file], window);
    expect(report.corruptLines).toBe(0);
    expect(report.groups).toEqual([
      expect.objectContaining({ lane: 'work', tenant: 'acme', started: 2, succeeded: 1, failed: 1, retried: 4, errorRate: 0.5 }),
    ]);
    expect((await buildReport([workerFile], window)).groups).toEqual(report.groups);
    expect(total(await exporter.samples(), 'bullpen_exporter_event_log_errors_total')).toBe(0);
  });

  it('gives bullpen report the same figures as the worker log when retries use no attempt', async () => {
    const file = path.join(dir, 'exporter.jsonl');
    const workerFile = path.join(dir, 'worker.jsonl');
    await startExporter({ EVENT_LOG_FILE: file });
    const worker = await startWorker({ EVENT_LOG_FILE: workerFile });
    const limited = createLaneQueue(testConfig({ prefix, env: { LANES_FILE: lanesFile } }), 'limited', redis);
    closers.push(() => limited.close());
    const t0 = Date.now();
    // Three jobs rate-limited without end: each is leased again and again under attempt 1.
    const added = await limited.addBulk(
      Array.from({ length: 3 }, () => ({ name: 'fail', data: wrapJobData({ kind: 'rate_limited', retryAfterMs: 5 }, { v: 1, tenant: 'acme' }) })),
    );
    const ids = new Set(added.map((job) => job.id as string));
    const leases = (f: string) => readLogLines(f).filter((l) => l.event === 'lease_created' && ids.has(String(l.job_id)));
    await waitUntil(() => leases(file).length >= 30, { what: 'thirty leases in the exporter log' });
    await worker.close();
    // Every lease the worker wrote has ended, so the exporter writes it too.
    await waitUntil(() => leases(file).length === leases(workerFile).length, { what: "the exporter's lines of every lease" });
    expect(leases(file).every((l) => l.attempt === 1)).toBe(true);

    const window = { from: t0 - 1000, to: Date.now() + 1000 };
    const fromExporter = await buildReport([file], window);
    const fromWorker = await buildReport([workerFile], window);
    const limitedGroup = (r: typeof fromWorker) => r.groups.find((g) => g.lane === 'limited');
    expect(limitedGroup(fromWorker)).toMatchObject({ started: 3, succeeded: 0, failed: 0 });
    expect(limitedGroup(fromExporter)).toEqual(limitedGroup(fromWorker));
  });

  it('rotates at EVENT_LOG_MAX_BYTES and keeps EVENT_LOG_MAX_FILES rotated files', async () => {
    const file = path.join(dir, 'events.jsonl');
    const exporter = await startExporter({ EVENT_LOG_FILE: file, EVENT_LOG_MAX_BYTES: '1024', EVENT_LOG_MAX_FILES: '2' });
    await startWorker();
    // About 600 bytes of lines per job: 40 jobs pass the limit many times over.
    const ids = await run(Array.from({ length: 40 }, () => ({ name: 'noop', data: {} })));
    await waitUntil(async () => (await attemptsCounted(exporter)) === ids.length, { what: 'the exporter to count every attempt' });
    await exporter.kill('SIGTERM');

    const lines = expectRotatedLog(file, 1024, 2);
    // The oldest lines went with the files rotated away.
    const completed = new Set(lines.filter((l) => l.event === 'completed').map((l) => l.job_id));
    expect(completed.size).toBeGreaterThan(0);
    expect(completed.size).toBeLessThan(ids.length);
  });

  it('loses no line to a SIGKILL: the restarted exporter writes what it had not committed, and bullpen report counts each job once', async () => {
    const file = path.join(dir, 'events.jsonl');
    await startWorker();
    const t0 = Date.now();
    // Each job fails once, so each has entries of its own that make lines (its failed attempt's
    // bp:attempt): completed attempts alone are batched, and a fast worker puts 300 of them in one
    // or two entries, which the first exporter would finish before its kill.
    const before = await run(Array.from({ length: 300 }, () => ({ name: 'fail', data: { kind: 'retryable', succeedOnAttempt: 2 } })));
    // A backlog of about 2,000 entries read in small batches, and an exporter killed three times,
    // each time as soon as it has written something: the kills land in the middle of it.
    const KILLS = 3;
    for (let k = 0; k < KILLS; k += 1) {
      const written = existsSync(file) ? statSync(file).size : 0;
      const doomed = await startExporter({ EVENT_LOG_FILE: file, EXPORTER_BATCH_SIZE: '3' });
      await waitUntil(() => existsSync(file) && statSync(file).size > written, { what: 'new lines', intervalMs: 5 });
      await doomed.kill('SIGKILL');
    }
    const after = await run(Array.from({ length: 10 }, () => ({ name: 'noop', data: {} })));
    const last = await startExporter({ EVENT_LOG_FILE: file, EXPORTER_BATCH_SIZE: '3' });
    const ids = [...before, ...after];
    const attempts = 2 * before.length + after.length;
    await waitUntil(async () => (await attemptsCounted(last)) === attempts, { what: 'the restarted exporter to count every attempt' });
    await last.kill('SIGTERM');

    const lines = readLogLines(file);
    const completed = new Set(lines.filter((l) => l.event === 'completed').map((l) => l.job_id));
    expect([...completed].sort()).toEqual([...ids].sort());
    const report = await buildReport([file], { from: t0 - 1000, to: Date.now() + 1000 });
    // A line cut by a kill belongs to a batch not yet committed, which was written again.
    expect(report.corruptLines).toBeLessThanOrEqual(KILLS);
    expect(report.groups).toEqual([
      expect.objectContaining({ lane: 'work', tenant: 'acme', started: ids.length, succeeded: ids.length, failed: 0, retried: before.length }),
    ]);
  });

  it('writes an events_lost line for entries trimmed from a lane stream while it was away, and bullpen report warns that its figures miss them', async () => {
    const file = path.join(dir, 'exporter.jsonl');
    let exporter = await startExporter({ EVENT_LOG_FILE: file });
    let worker = await startWorker();
    const t0 = Date.now();
    const before = await run(Array.from({ length: 3 }, () => ({ name: 'noop', data: {} })));
    await waitUntil(async () => (await attemptsCounted(exporter)) === before.length, { what: 'the exporter to count the first jobs' });
    await exporter.kill('SIGTERM');
    // While the exporter is away, 10 jobs run and their entries are trimmed (what EVENTS_MAX_LEN
    // does in an outage longer than the stream holds). The worker is closed first, so that its
    // last batched entry is in the stream when it is trimmed.
    const away = await run(Array.from({ length: 10 }, () => ({ name: 'noop', data: {} })));
    await worker.close();
    expect(await redis.xtrim(laneEventsKey(prefix, 'work'), 'MAXLEN', 0)).toBeGreaterThan(0);

    exporter = await startExporter({ EVENT_LOG_FILE: file });
    worker = await startWorker();
    const after = await run(Array.from({ length: 3 }, () => ({ name: 'noop', data: {} })));
    await waitUntil(async () => (await attemptsCounted(exporter)) === before.length + after.length, { what: 'the restarted exporter to count the last jobs' });
    const lost = total(await exporter.samples(), 'bullpen_exporter_events_lost_total', { lane: 'work' });
    await exporter.kill('SIGTERM');

    const lines = readLogLines(file);
    const losses = lines.filter((l) => l.event === 'events_lost');
    expect(losses).toHaveLength(1);
    const [loss] = losses as [LogLine];
    expect(Object.keys(loss)).toEqual(['ts', 'event', 'lane', 'lost', 'from_ts', 'from_stream_id', 'entries_before', 'to_stream_id']);
    // Four entries a job at least (BullMQ's added, waiting, active, completed) and bullpen's own.
    expect(loss).toMatchObject({ lane: 'work', lost, to_stream_id: null });
    expect(lost).toBeGreaterThanOrEqual(4 * away.length);
    // The loss runs from the entry the exporter had counted up to: after the first jobs' lines,
    // before the last ones'.
    const streamIdsOf = (ids: string[]) => lines.filter((l) => ids.includes(String(l.job_id))).map((l) => String(l.stream_id));
    const ms = (id: string) => Number(id.split('-')[0]);
    const from = String(loss.from_stream_id);
    for (const id of streamIdsOf(before)) expect(ms(id)).toBeLessThanOrEqual(ms(from));
    for (const id of streamIdsOf(after)) expect(ms(id)).toBeGreaterThanOrEqual(Date.parse(String(loss.ts)));
    expect(loss.from_ts).toBe(new Date(ms(from)).toISOString());
    expect(streamIdsOf(away)).toEqual([]);

    const report = await buildReport([file], { from: t0 - 1000, to: Date.now() + 1000 });
    expect(report).toMatchObject({ corruptLines: 0, duplicateLines: 0 });
    expect(report.groups).toEqual([expect.objectContaining({ lane: 'work', tenant: 'acme', started: before.length + after.length })]);
    expect(report.eventsLost).toEqual([{ lane: 'work', lost, from: loss.from_ts, to: loss.ts }]);
  });

  it('keeps counting while the disk is stuck: the lines its full buffer drops are counted in a metric and logged once', async () => {
    // Opening a FIFO for writing waits for a reader, as a write to a hung disk waits.
    const fifo = path.join(dir, 'events.jsonl');
    execFileSync('mkfifo', [fifo]);
    const exporter = await startExporter({ EVENT_LOG_FILE: fifo, EVENT_LOG_MAX_BUFFERED_LINES: '4' });
    await startWorker();
    const dropped = async () => total(await exporter.samples(), 'bullpen_exporter_event_log_dropped_lines_total');
    expect(await dropped()).toBe(0);

    const ids = await run(Array.from({ length: 10 }, () => ({ name: 'noop', data: {} })));
    await waitUntil(async () => (await attemptsCounted(exporter)) === ids.length, { what: 'the exporter to count every attempt' });
    // lease_created + completed per job: 20 lines, of which the stuck write holds some and the
    // buffer four; the rest are dropped, and counted.
    await waitUntil(async () => (await dropped()) >= 12, { what: 'the dropped lines to be counted' });
    expect(total(await exporter.samples(), 'bullpen_exporter_event_log_errors_total')).toBe(0);
    const reported = exporter.logs().filter((l) => String(l.msg).startsWith('lifecycle event log: write buffer full'));
    expect(reported).toEqual([expect.objectContaining({ level: 'warn', file: fifo, max_buffered_lines: 4 })]);
  });

  it('keeps counting when the log cannot be written: the failed writes are counted in a metric and logged once', async () => {
    const blocker = path.join(dir, 'not-a-directory');
    writeFileSync(blocker, 'a file where the log directory should be\n');
    const exporter = await startExporter({ EVENT_LOG_FILE: path.join(blocker, 'events.jsonl') });
    await startWorker();
    const errors = async () => total(await exporter.samples(), 'bullpen_exporter_event_log_errors_total');
    expect(await errors()).toBe(0);

    const first = await run(Array.from({ length: 5 }, () => ({ name: 'noop', data: {} })));
    await waitUntil(async () => (await attemptsCounted(exporter)) === first.length && (await errors()) >= 1, { what: 'a failed write, counted' });
    const failedSoFar = await errors();
    const second = await run(Array.from({ length: 5 }, () => ({ name: 'noop', data: {} })));
    await waitUntil(async () => (await attemptsCounted(exporter)) === first.length + second.length, { what: 'the exporter to count on' });

    expect(await errors()).toBeGreaterThan(failedSoFar);
    expect(total(await exporter.samples(), 'bullpen_jobs_completed_total')).toBe(first.length + second.length);
    const reported = exporter.logs().filter((l) => String(l.msg).startsWith('lifecycle event log: write failed'));
    expect(reported).toEqual([expect.objectContaining({ level: 'error', code: 'EEXIST', file: path.join(blocker, 'events.jsonl') })]);
    expect(existsSync(path.join(blocker, 'events.jsonl'))).toBe(false);
    const health = (await (await fetch(`${exporter.url}/healthz`)).json()) as Record<string, unknown>;
    expect(health).toMatchObject({ ok: true, reading: true });
  });
});
