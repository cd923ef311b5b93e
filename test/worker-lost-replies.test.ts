// Replies that Redis ran the command for but that never reached the worker: the connection dropped
// in between (a Redis restart or failover, a network cut), and the worker's connection sends the
// command again once it is back. Each job that completed once counts one completed attempt, and a
// completion Redis had stored is the job's outcome rather than a "Missing lock" error.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import IORedis from 'ioredis';
import { jobKeys, laneEventsKey, LANE_EVENT, type AttemptEvent } from '@bullpen/core';
import { defineHandler } from '../apps/worker/src/handler';
import { startWorkerHarness, type WorkerHarness } from './fixtures/worker-harness';
import { captureLogs } from './support/logs';
import { spawnExporter, total, type ExporterProcess } from './support/prometheus';
import { startReplyLosingProxy, type ReplyLosingProxy } from './support/reply-losing-proxy';
import { redisUrl, waitUntil } from './support/wait';

const LANE = 'replies';
const LANES = { lanes: { [LANE]: { concurrency: 4 } } };
const MARKER = 'completion-reply-lost';

const quick = defineHandler({ name: 'quick', run: () => 'ok' });
const marked = defineHandler({ name: 'marked', run: () => ({ marker: MARKER }) });

describe('a worker whose replies Redis ran the command for are lost', () => {
  let proxy: ReplyLosingProxy;
  let direct: IORedis;
  let harness: WorkerHarness | undefined;
  let exporter: ExporterProcess | undefined;
  let dir: string;

  beforeEach(async () => {
    proxy = await startReplyLosingProxy(Number(new URL(redisUrl()).port));
    direct = new IORedis(redisUrl(), { maxRetriesPerRequest: 3 });
    dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-lost-replies-'));
  });

  afterEach(async () => {
    await exporter?.kill('SIGKILL');
    exporter = undefined;
    await harness?.close();
    harness = undefined;
    await proxy.close();
    direct.disconnect();
    rmSync(dir, { recursive: true, force: true });
  });

  const startWorker = async () => {
    harness = await startWorkerHarness({ lanesFile: LANES, handlers: [quick, marked], env: { REDIS_URL: proxy.url } });
    return harness;
  };

  /** The completed bp:completed_attempts rows in the lane's stream, copies included. */
  const completedRows = async (h: WorkerHarness): Promise<AttemptEvent[]> =>
    (await h.streamEvents(LANE)).filter((ev): ev is AttemptEvent => ev.event === LANE_EVENT.attempt && ev.outcome === 'completed');

  /** What the exporter counts once it has read the whole lane stream. */
  async function exporterCounts(h: WorkerHarness): Promise<{ attempts: number; completed: number }> {
    const lanesFile = path.join(dir, 'lanes.json');
    writeFileSync(lanesFile, JSON.stringify(LANES));
    exporter = await spawnExporter({ REDIS_URL: redisUrl(), BULLPEN_PREFIX: h.config.prefix, LANES_FILE: lanesFile });
    const entries = await direct.xlen(laneEventsKey(h.config.prefix, LANE));
    const samples = await waitUntil(
      async () => {
        const s = await exporter!.samples();
        return total(s, 'bullpen_exporter_events_processed_total', { lane: LANE }) === entries ? s : undefined;
      },
      { what: `the exporter to read ${entries} entries` },
    );
    return {
      attempts: total(samples, 'bullpen_job_attempts_total', { lane: LANE, outcome: 'completed' }),
      completed: total(samples, 'bullpen_jobs_completed_total', { lane: LANE }),
    };
  }

  it('counts each completed attempt once when a completed-attempts write is sent again', async () => {
    const h = await startWorker();
    const stream = laneEventsKey(h.config.prefix, LANE);
    const cut = proxy.loseReplyTo(
      (sent) => sent.includes('bp:completed_attempts'),
      async () => (await direct.xrange(stream, '-', '+')).some(([, fields]) => fields.includes('bp:completed_attempts')),
    );
    for (let i = 0; i < 12; i += 1) await h.add(LANE, 'quick', {});
    await cut;
    await waitUntil(async () => new Set((await completedRows(h)).map((ev) => ev.jobId)).size === 12, { what: 'a completed row for every job' });
    // The write Redis had applied is in the stream twice, with one flush token, once the worker's
    // connection is back and has sent it again.
    await waitUntil(async () => (await completedRows(h)).length > 12, { what: 'the resent completed-attempts entry' });
    expect(await exporterCounts(h)).toEqual({ attempts: 12, completed: 12 });
  });

  it('takes a completion whose reply was lost as the job\'s outcome, with no Missing lock error', async () => {
    const h = await startWorker();
    const logs = captureLogs(h.logger);
    const jobId = 'reply-lost-1';
    const cut = proxy.loseReplyTo(
      (sent) => sent.includes(MARKER),
      async () => (await direct.hget(jobKeys(h.config.prefix, LANE, jobId).job, 'finishedOn')) !== null,
    );
    await h.add(LANE, 'marked', {}, { job: { jobId } });
    await cut;
    await h.waitForEvent('job:completed', (ev) => ev.jobId === jobId);
    await waitUntil(async () => (await completedRows(h)).some((ev) => ev.jobId === jobId), { what: 'the completed row of the job' });
    expect(await h.queue(LANE).getJobState(jobId)).toBe('completed');
    expect(logs.filter((line) => line.level === 'error')).toEqual([]);
    expect(await exporterCounts(h)).toEqual({ attempts: 1, completed: 1 });
  });
});
