// The worker's structured logs: one JSON object per line with ts, level, service and msg; an
// attempt's lines are debug lines carrying lane, job_id and attempt; job payloads and return
// values are absent unless LOG_JOB_PAYLOADS=true, and then with LOG_REDACT_KEYS redacted.
import { Writable } from 'node:stream';
import winston from 'winston';
import { createLogger, createLaneQueue, createRedis, wrapJobData, type BullpenConfig } from '@bullpen/core';
import type { Queue } from 'bullmq';
import type IORedis from 'ioredis';
import { buildRegistry } from '../apps/worker/src/default-registry';
import { defineHandler } from '../apps/worker/src/handler';
import { WorkerRuntime } from '../apps/worker/src/runtime';
import { cleanupPrefix, standaloneUrl, testConfig } from './support/config';
import { waitUntil } from './support/wait';

const SECRETS = ['hunter2', 'tok-123', '123-45-6789', 'result-token-9'];
const PAYLOAD = { user: 'ann', password: 'hunter2', nested: { token: 'tok-123', ssn: '123-45-6789' } };

const secretive = defineHandler({
  name: 'secretive',
  run: () => ({ token: 'result-token-9', value: 42 }),
});

interface Running {
  config: BullpenConfig;
  lines: string[];
  parsed(): Array<Record<string, unknown>>;
  /** Adds a job and waits until it has finished (completed or failed). */
  run(name: string, data: unknown): Promise<string>;
  close(): Promise<void>;
}

async function startWorker(env: Record<string, string>): Promise<Running> {
  const config = testConfig({
    env: { LOG_LEVEL: 'debug', ...env },
    lanesFile: { lanes: { vault: { concurrency: 2, attempts: 2, backoff: { strategy: 'fixed', baseMs: 10, capMs: 100 } } } },
  });
  const lines: string[] = [];
  const logger = createLogger('worker', config.logLevel);
  logger.clear();
  logger.add(
    new winston.transports.Stream({
      stream: new Writable({
        write(chunk, _encoding, done) {
          lines.push(String(chunk));
          done();
        },
      }),
    }),
  );
  const runtime = new WorkerRuntime({ config, logger, registry: buildRegistry(undefined).register(secretive, 'the test') });
  await runtime.start();
  const redis: IORedis = createRedis(standaloneUrl(config), 'worker', 'bullpen:test');
  const queue: Queue = createLaneQueue(config, 'vault', redis);
  return {
    config,
    lines,
    parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>),
    async run(name, data) {
      const job = await queue.add(name, wrapJobData(data, { v: 1, tenant: 'acme' }));
      const id = job.id as string;
      await waitUntil(async () => ['completed', 'failed'].includes(await queue.getJobState(id)), { what: `job ${id} to finish` });
      return id;
    },
    async close() {
      await runtime.close(5000);
      await queue.close();
      await redis.quit();
      await cleanupPrefix(config.prefix);
    },
  };
}

describe('worker log lines', () => {
  const running: Running[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((r) => r.close()));
  });
  const start = async (env: Record<string, string> = {}) => {
    const r = await startWorker(env);
    running.push(r);
    return r;
  };

  it('writes one JSON object per line with ts, level, service and msg, and lane, job_id and attempt on the attempt debug lines', async () => {
    const worker = await start();
    const ok = await worker.run('secretive', PAYLOAD);
    const failed = await worker.run('fail', { kind: 'retryable' });

    const lines = worker.parsed();
    expect(lines.length).toBe(worker.lines.length);
    for (const line of lines) {
      expect(line).toMatchObject({ ts: expect.any(String), level: expect.any(String), service: 'worker', msg: expect.any(String) });
      expect(new Date(line.ts as string).toISOString()).toBe(line.ts);
    }
    const of = (id: string, msg: string) => lines.filter((l) => l.job_id === id && l.msg === msg);
    expect(of(ok, 'attempt started')).toEqual([
      expect.objectContaining({ level: 'debug', lane: 'vault', job_id: ok, attempt: 1, job_name: 'secretive', tenant: 'acme' }),
    ]);
    expect(of(ok, 'attempt succeeded')).toEqual([expect.objectContaining({ level: 'debug', lane: 'vault', attempt: 1, run_ms: expect.any(Number) })]);
    expect(of(failed, 'attempt failed').map((l) => [l.level, l.lane, l.attempt, l.error_class, l.plan])).toEqual([
      ['debug', 'vault', 1, 'handler', 'retry'],
      ['debug', 'vault', 2, 'handler', 'dead'],
    ]);
    // No per-job line above debug.
    expect(lines.filter((l) => l.level !== 'debug' && (l.job_id === ok || l.job_id === failed))).toEqual([]);
  });

  it('never logs payloads or return values by default', async () => {
    const worker = await start();
    const id = await worker.run('secretive', PAYLOAD);
    expect(worker.parsed().some((l) => l.job_id === id)).toBe(true);
    for (const line of worker.parsed()) {
      expect(line).not.toHaveProperty('payload');
      expect(line).not.toHaveProperty('result');
    }
    const text = worker.lines.join('');
    for (const secret of [...SECRETS, 'ann']) expect(text).not.toContain(secret);
  });

  it('logs payloads and return values at debug with the configured keys redacted when LOG_JOB_PAYLOADS=true', async () => {
    const worker = await start({ LOG_JOB_PAYLOADS: 'true', LOG_REDACT_KEYS: 'password,token,ssn' });
    const id = await worker.run('secretive', PAYLOAD);
    const lines = worker.parsed().filter((l) => l.job_id === id);
    expect(lines.find((l) => l.msg === 'attempt started')).toMatchObject({
      level: 'debug',
      payload: { user: 'ann', password: '[redacted]', nested: { token: '[redacted]', ssn: '[redacted]' } },
    });
    expect(lines.find((l) => l.msg === 'attempt succeeded')).toMatchObject({ level: 'debug', result: { token: '[redacted]', value: 42 } });
    const text = worker.lines.join('');
    for (const secret of SECRETS) expect(text).not.toContain(secret);
  });
});
