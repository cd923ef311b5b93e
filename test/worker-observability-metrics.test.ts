// The worker's own metrics and health endpoint: the catalogue's worker series read from a running
// runtime (active handlers and slots per lane, the process cap, the memory guard, RSS and heap,
// event-loop lag, handlers that ignored their abort signal), a scrape `promtool check metrics`
// accepts, and the worker process serving /metrics and /healthz on WORKER_METRICS_PORT.
import { existsSync } from 'node:fs';
import { loadConfig, metricsOf } from '@bullpen/core';
import { defineHandler } from '../apps/worker/src/handler';
import { MetricsServer } from '../apps/worker/src/metrics-server';
import { WorkerMetrics } from '../apps/worker/src/worker-metrics';
import { startWorkerHarness, type WorkerHarness } from './fixtures/worker-harness';
import { WORKER_MAIN, spawnWorker, writeLanesFile, type WorkerProcess } from './fixtures/worker-process';
import { cleanupPrefix } from './support/config';
import { declaredMetrics, parseExposition, promtool, total } from './support/prometheus';
import { deferred, redisUrl, testPrefix, waitUntil } from './support/wait';

const MiB = 1024 * 1024;

describe('worker metrics', () => {
  let harness: WorkerHarness | undefined;
  let metrics: WorkerMetrics | undefined;
  let server: MetricsServer | undefined;
  let worker: WorkerProcess | undefined;
  const cleanups: Array<() => void | Promise<void>> = [];

  afterEach(async () => {
    await server?.close();
    metrics?.close();
    await harness?.close();
    await worker?.stop('SIGKILL');
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    harness = metrics = server = worker = undefined;
  });

  /** A runtime (not yet started) with its metrics served on a free port. */
  async function serve(options: Parameters<typeof startWorkerHarness>[0]) {
    harness = await startWorkerHarness({ ...options, start: false });
    const h = harness;
    metrics = new WorkerMetrics(h.runtime);
    metrics.start();
    server = new MetricsServer(metrics.registry, () => ({ ok: h.runtime.status === 'running', status: h.runtime.status }));
    const base = `http://127.0.0.1:${await server.listen('127.0.0.1', 0)}`;
    const scrape = async () => {
      const res = await fetch(`${base}/metrics`);
      expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
      return res.text();
    };
    const sample = async (name: string, labels: Record<string, string> = {}) => total(parseExposition(await scrape()), name, labels);
    return { h, base, scrape, sample };
  }

  it('serves every worker series of the catalogue, with the lanes its runtime serves, in a scrape promtool accepts', async () => {
    const gate = deferred();
    const held = defineHandler({ name: 'held', run: () => gate.promise.then(() => 'released') });
    const { h, base, scrape, sample } = await serve({
      lanesFile: { maxHandlersPerProcess: 10, lanes: { a: { concurrency: 3 }, b: { concurrency: 2 } } },
      handlers: [held],
    });
    // /healthz answers 503 until the runtime runs.
    const before = await fetch(`${base}/healthz`);
    expect({ status: before.status, body: await before.json() }).toEqual({ status: 503, body: { ok: false, status: 'new' } });
    await h.runtime.start();
    const after = await fetch(`${base}/healthz`);
    expect({ status: after.status, body: await after.json() }).toEqual({ status: 200, body: { ok: true, status: 'running' } });

    const text = await scrape();
    const check = promtool(['check', 'metrics'], text);
    expect(`${check.status} ${check.stdout}${check.stderr}`.trim()).toBe('0');
    const declared = declaredMetrics(text);
    for (const def of metricsOf('worker')) expect(declared).toContain(def.name);
    expect(declared).toContain('process_cpu_user_seconds_total'); // the default process metrics
    expect(declared).toContain('nodejs_heap_size_used_bytes');
    const samples = parseExposition(text);
    const value = (name: string, labels: Record<string, string> = {}) => total(samples, name, labels);
    expect(value('bullpen_worker_concurrency_slots', { lane: 'a' })).toBe(3);
    expect(value('bullpen_worker_concurrency_slots', { lane: 'b' })).toBe(2);
    expect(value('bullpen_worker_max_handlers')).toBe(10);
    // The lanes' concurrencies fit in the process's ten slots together: each lane, idle or not,
    // may hold its whole concurrency (the lanes' shares when they do not fit: slot-share tests).
    expect(value('bullpen_worker_slot_share', { lane: 'a' })).toBe(3);
    expect(value('bullpen_worker_slot_share', { lane: 'b' })).toBe(2);
    expect(value('bullpen_worker_memory_guard_active')).toBe(0);
    for (const lane of ['a', 'b']) {
      expect(samples.filter((s) => s.name === 'bullpen_worker_active_handlers' && s.labels.lane === lane)).toHaveLength(1);
      expect(value('bullpen_worker_jobs_waiting_for_slot', { lane })).toBe(0);
      expect(samples.filter((s) => s.name === 'bullpen_worker_abort_ignored_total' && s.labels.lane === lane)).toEqual([
        { name: 'bullpen_worker_abort_ignored_total', labels: { lane }, value: 0 },
      ]);
    }
    expect(value('bullpen_worker_event_log_errors_total')).toBe(0);
    expect(value('bullpen_worker_resident_memory_bytes')).toBeGreaterThan(16 * MiB);
    expect(value('bullpen_worker_heap_used_bytes')).toBeGreaterThan(MiB);
    expect(value('bullpen_worker_event_loop_lag_seconds')).toBeGreaterThanOrEqual(0);

    // Three handlers of lane a holding slots, read at scrape time; then none.
    for (let i = 0; i < 3; i += 1) await h.add('a', 'held', {});
    await waitUntil(async () => (await sample('bullpen_worker_active_handlers', { lane: 'a' })) === 3, { what: 'three active handlers in a' });
    expect(await sample('bullpen_worker_active_handlers', { lane: 'b' })).toBe(0);
    // Ten slots are enough for all of a busy lane's concurrency.
    expect(await sample('bullpen_worker_slot_share', { lane: 'a' })).toBe(3);
    gate.resolve();
    await waitUntil(async () => (await sample('bullpen_worker_active_handlers', { lane: 'a' })) === 0, { what: 'the handlers to finish' });
  });

  it('shows a lane\'s leased job waiting for the only slot while another lane\'s handler holds it', async () => {
    const gate = deferred();
    const held = defineHandler({ name: 'held', run: () => gate.promise.then(() => 'released') });
    const { h, sample } = await serve({
      lanesFile: { maxHandlersPerProcess: 1, lanes: { a: { concurrency: 2 }, b: { concurrency: 2 } } },
      handlers: [held],
    });
    await h.runtime.start();
    await h.add('a', 'held', {});
    await waitUntil(async () => (await sample('bullpen_worker_active_handlers', { lane: 'a' })) === 1, { what: 'the handler in a' });
    // More lanes than slots: each lane still fetches one job, and b's waits for the slot a holds.
    const waiting = await h.add('b', 'noop', {});
    await waitUntil(async () => (await sample('bullpen_worker_jobs_waiting_for_slot', { lane: 'b' })) === 1, { what: 'b\'s job to wait for a slot' });
    expect(await sample('bullpen_worker_slot_share', { lane: 'a' })).toBe(1);
    expect(await sample('bullpen_worker_slot_share', { lane: 'b' })).toBe(1);
    gate.resolve();
    await h.waitForEvent('job:completed', (e) => e.jobId === waiting);
    expect(await sample('bullpen_worker_jobs_waiting_for_slot', { lane: 'b' })).toBe(0);
  });

  it('reports event-loop lag in seconds from the delay since the previous scrape', async () => {
    const { h, sample } = await serve({ lanesFile: { lanes: { a: { concurrency: 1 } } } });
    await h.runtime.start();
    await sample('bullpen_worker_event_loop_lag_seconds'); // resets the window
    const blockedUntil = Date.now() + 300;
    while (Date.now() < blockedUntil) {
      // the loop is blocked, as by a CPU-bound handler
    }
    expect(await sample('bullpen_worker_event_loop_lag_seconds')).toBeGreaterThan(0.05);
  });

  it('counts per lane the in-process handlers that ignored their aborted signal', async () => {
    const stubborn = defineHandler({ name: 'stubborn', run: () => new Promise((resolve) => setTimeout(resolve, 300)) });
    const { h, sample } = await serve({
      lanesFile: { lanes: { a: { concurrency: 1 }, b: { concurrency: 1, attempts: 1, timeoutMs: 50, timeoutEscalationFactor: 1.5 } } },
      handlers: [stubborn],
    });
    await h.runtime.start();
    const id = await h.add('b', 'stubborn', {});
    await h.waitForEvent('handler:timeout-escalated', (e) => e.jobId === id);
    expect(await sample('bullpen_worker_abort_ignored_total', { lane: 'b' })).toBe(1);
    expect(await sample('bullpen_worker_abort_ignored_total', { lane: 'a' })).toBe(0);
  });

  it("counts the handler runs that took 80% of their attempt's timeout, the job's own timeoutMs when it has one", async () => {
    const nap = defineHandler({
      name: 'nap',
      run: (data, ctx) =>
        new Promise<string>((resolve) => {
          const { ms } = data as { ms: number };
          const timer = setTimeout(() => resolve('rested'), ms);
          ctx.signal.addEventListener('abort', () => (clearTimeout(timer), resolve('woken')), { once: true });
        }),
    });
    const { h, sample } = await serve({ lanesFile: { lanes: { a: { concurrency: 4, timeoutMs: 1000 } } }, handlers: [nap] });
    await h.runtime.start();
    expect(await sample('bullpen_worker_handler_runs_total', { lane: 'a' })).toBe(0);
    expect(await sample('bullpen_worker_handler_runs_near_timeout_total', { lane: 'a' })).toBe(0);
    const ids = await Promise.all([
      h.add('a', 'nap', { ms: 850 }), // 85% of the lane's 1 s: near
      h.add('a', 'nap', { ms: 50 }), // 5%
      h.add('a', 'nap', { ms: 1300 }, { meta: { timeoutMs: 5000 } }), // 26% of its own 5 s (past the lane's 1 s)
      h.add('a', 'nap', { ms: 300 }, { meta: { timeoutMs: 350 } }), // 86% of its own 350 ms: near
    ]);
    for (const id of ids) await h.waitForEvent('job:completed', (e) => e.jobId === id);
    expect(await sample('bullpen_worker_handler_runs_total', { lane: 'a' })).toBe(4);
    expect(await sample('bullpen_worker_handler_runs_near_timeout_total', { lane: 'a' })).toBe(2);
  });

  it('shows the memory guard holding intake while RSS is over the limit', async () => {
    let rss = 40 * MiB;
    const { h, sample } = await serve({
      lanesFile: { lanes: { a: { concurrency: 1 } } },
      env: { WORKER_MAX_RSS_MB: '64' },
      memory: { intervalMs: 20, sample: () => ({ rss, heapUsed: 10 * MiB }) },
    });
    await h.runtime.start();
    expect(await sample('bullpen_worker_memory_guard_active')).toBe(0);
    rss = 70 * MiB;
    await h.waitForEvent('memory:paused', () => true);
    expect(await sample('bullpen_worker_memory_guard_active')).toBe(1);
    rss = 40 * MiB;
    await h.waitForEvent('memory:resumed', () => true);
    expect(await sample('bullpen_worker_memory_guard_active')).toBe(0);
  });

  it('serves /metrics and /healthz from the worker process on WORKER_METRICS_PORT, 9464 unless set', async () => {
    expect(loadConfig({}).workerMetricsPort).toBe(9464);
    expect(() => loadConfig({ WORKER_METRICS_PORT: 'x' })).toThrow(/WORKER_METRICS_PORT: expected an integer from 0 to 65535/);
    if (!existsSync(WORKER_MAIN)) throw new Error(`${WORKER_MAIN} is missing: run npx tsc -b apps/worker first`);
    const lanes = writeLanesFile({ lanes: { a: { concurrency: 2 } } });
    const prefix = testPrefix('wm');
    cleanups.push(lanes.cleanup, () => cleanupPrefix(prefix));
    worker = spawnWorker({
      REDIS_URL: redisUrl(),
      BULLPEN_PREFIX: prefix,
      LANES_FILE: lanes.file,
      HOST: '127.0.0.1',
      WORKER_METRICS_PORT: '0',
      API_KEYS: 'acme:never-logged-secret-key',
    });
    await worker.started();
    const w = worker;
    const lines = w
      .stdout()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, any>);
    // The effective configuration first, secrets masked.
    expect(lines[0]).toMatchObject({ level: 'info', service: 'worker', msg: 'starting', tracing: false });
    expect(lines[0]?.config).toMatchObject({ prefix, workerMetricsPort: 0, lanes: ['a'], apiKeys: [{ tenant: 'acme', key: '***' }] });
    expect(w.stdout()).not.toContain('never-logged-secret-key');
    const port = lines.find((l) => l.msg === 'metrics listening')?.port as number;
    expect(port).toBeGreaterThan(0);

    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect({ status: health.status, body: await health.json() }).toEqual({ status: 200, body: { ok: true, status: 'running' } });
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const check = promtool(['check', 'metrics'], text);
    expect(`${check.status} ${check.stdout}${check.stderr}`.trim()).toBe('0');
    expect(total(parseExposition(text), 'bullpen_worker_concurrency_slots', { lane: 'a' })).toBe(2);
    expect(await w.stop('SIGTERM')).toBe(0);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  });
});
