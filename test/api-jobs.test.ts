// Submitting, reading and cancelling jobs over REST against a real Redis; a plain BullMQ Worker
// stands in for bullpen's worker where a job has to run.
import { Job, Queue, Worker } from 'bullmq';
import type IORedis from 'ioredis';
import {
  JOB_FIELD,
  cancelChannel,
  createRedis,
  formatAttemptLogRow,
  jobKeys,
  lanePrefix,
  laneStateKeys,
  unwrapJobData,
} from '@bullpen/core';
import { KEYS, startTestApi, whenReady, type TestApi } from '../apps/api/test/harness';
import { deferred, waitUntil } from './support/wait';
import { standaloneUrl } from './support/config';

const LANE = 'tool_call';

describe('producer API: jobs', () => {
  let api: TestApi;
  const workers: Worker[] = [];
  const connections: IORedis[] = [];

  beforeEach(async () => {
    api = await startTestApi();
  });

  afterEach(async () => {
    await Promise.all(workers.splice(0).map((w) => w.close()));
    connections.splice(0).forEach((c) => c.disconnect());
    await api.stop();
  });

  function startWorker(processor: (job: Job) => Promise<unknown>): Worker {
    const connection = createRedis(standaloneUrl(api.config), 'worker');
    connections.push(connection);
    const worker = new Worker(LANE, processor, { connection, prefix: lanePrefix(api.config.prefix, LANE) });
    worker.on('error', () => undefined);
    workers.push(worker);
    return worker;
  }

  it('answers a submission with 201 and the job, which GET then shows waiting', async () => {
    const created = await api.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop', data: { n: 1 } } });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({ id: expect.any(String), lane: LANE, name: 'noop', state: 'waiting', createdAt: expect.any(String) });

    const read = await api.request('GET', `/v1/lanes/${LANE}/jobs/${created.body.id}`);
    expect(read.status).toBe(200);
    expect(read.body).toMatchObject({
      id: created.body.id,
      lane: LANE,
      name: 'noop',
      state: 'waiting',
      attemptsMade: 0,
      createdAt: created.body.createdAt,
      processedAt: null,
      finishedAt: null,
      failedReason: null,
      errorClass: null,
      returnValue: null,
      attempts: [],
    });
    expect(await api.backlog(LANE)).toBe(1);
  });

  it('stores the payload in the envelope with the tenant, deadline, timeout and job options', async () => {
    const before = Date.now();
    const created = await api.request('POST', `/v1/lanes/${LANE}/jobs`, {
      body: { name: 'noop', data: { x: [1] }, priority: 5, attempts: 7, deadlineMs: 60_000, timeoutMs: 500 },
    });
    expect(created.status).toBe(201);
    expect(created.body.state).toBe('prioritized');
    const queue = new Queue(LANE, { connection: api.redis, prefix: lanePrefix(api.config.prefix, LANE) });
    try {
      const job = await Job.fromId(queue, created.body.id);
      const { data, meta } = unwrapJobData(job?.data);
      expect(data).toEqual({ x: [1] });
      expect(meta).toMatchObject({ v: 1, tenant: 'acme', timeoutMs: 500 });
      expect(meta?.deadlineAt).toBeGreaterThanOrEqual(before + 60_000);
      expect(job?.opts).toMatchObject({ attempts: 7, priority: 5, backoff: { type: 'bullpen' } });
    } finally {
      await queue.close();
    }
  });

  it('stores a job with a small payload as a compact Redis hash: its options hold neither its id nor the retention', async () => {
    const single = await api.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop', data: { n: 1 } } });
    const bulk = await api.request('POST', `/v1/lanes/${LANE}/jobs/bulk`, { body: { jobs: [{ name: 'noop', data: { n: 2 } }] } });
    expect(single.status).toBe(201);
    expect(bulk.status).toBe(200);
    expect(bulk.body.results[0].status).toBe('created');
    for (const id of [single.body.id, bulk.body.results[0].id]) {
      const key = jobKeys(api.config.prefix, LANE, id).job;
      // Redis keeps a hash as a listpack while every value is at most 64 bytes (its default
      // hash-max-listpack-value); one longer field makes it a hash table of about four times the memory.
      expect(await api.redis.object('ENCODING', key)).toBe('listpack');
      expect(JSON.parse((await api.redis.hget(key, 'opts'))!)).toEqual({ attempts: expect.any(Number), backoff: { type: 'bullpen' } });
    }
  });

  it('shows a completed job with its return value after a worker ran it', async () => {
    const created = await api.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'echo', data: { say: 'hi' } } });
    startWorker(async (job) => ({ echoed: unwrapJobData(job.data).data }));

    const done = await waitUntil(
      async () => {
        const reply = await api.request('GET', `/v1/lanes/${LANE}/jobs/${created.body.id}`);
        return reply.body.state === 'completed' ? reply : undefined;
      },
      { what: 'the job to complete' },
    );
    expect(done.body).toMatchObject({
      state: 'completed',
      attemptsMade: 1,
      returnValue: { echoed: { say: 'hi' } },
      processedAt: expect.any(String),
      finishedAt: expect.any(String),
    });
  });

  it('shows a failed job with its reason, attempt history and the last error class', async () => {
    const created = await api.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'flaky', attempts: 1 } });
    startWorker(async (job) => {
      await job.log(formatAttemptLogRow({ attempt: 1, errorClass: 'http_5xx', message: 'upstream 502', delayMs: null, worker: 'w-1', ts: Date.now() }));
      throw new Error('upstream 502');
    });

    const failed = await waitUntil(
      async () => {
        const reply = await api.request('GET', `/v1/lanes/${LANE}/jobs/${created.body.id}`);
        return reply.body.state === 'failed' ? reply : undefined;
      },
      { what: 'the job to fail' },
    );
    expect(failed.body).toMatchObject({
      state: 'failed',
      failedReason: 'upstream 502',
      errorClass: 'http_5xx',
      attempts: [{ attempt: 1, errorClass: 'http_5xx', message: 'upstream 502', delayMs: null, worker: 'w-1', at: expect.any(String) }],
    });
  });

  it('removes a waiting job on DELETE, after which it is not found', async () => {
    const created = await api.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop', delayMs: 60_000 } });
    const removed = await api.request('DELETE', `/v1/lanes/${LANE}/jobs/${created.body.id}`);
    expect(removed.status).toBe(200);
    expect(removed.body).toEqual({ id: created.body.id, lane: LANE, state: 'removed', previousState: 'delayed' });
    expect(await api.backlog(LANE)).toBe(0);
    const read = await api.request('GET', `/v1/lanes/${LANE}/jobs/${created.body.id}`);
    expect(read.status).toBe(404);
    expect(read.body.code).toBe('job_not_found');
  });

  it('asks workers to abort an active job on DELETE by publishing on the cancel channel', async () => {
    const subscriber = createRedis(standaloneUrl(api.config), 'events');
    try {
      await whenReady(subscriber);
      const received = deferred<string>();
      subscriber.on('message', (_channel, message) => received.resolve(message));
      await subscriber.subscribe(cancelChannel(api.config.prefix));

      const started = deferred<string>();
      const release = deferred();
      startWorker(async (job) => {
        started.resolve(String(job.id));
        await release.promise;
      });
      const created = await api.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'slow' } });
      expect(await started.promise).toBe(created.body.id);

      const cancel = await api.request('DELETE', `/v1/lanes/${LANE}/jobs/${created.body.id}`);
      expect(cancel.status).toBe(202);
      expect(cancel.body).toEqual({ id: created.body.id, lane: LANE, state: 'active', cancelRequested: true });
      expect(JSON.parse(await received.promise)).toEqual({ lane: LANE, jobId: created.body.id });
      release.resolve();
    } finally {
      subscriber.disconnect();
    }
  });

  it('leaves a completed job and its result on DELETE: 409 job_finished naming its state, and no cancel mark', async () => {
    const created = await api.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'echo', data: { n: 1 } } });
    startWorker(async () => ({ done: true }));
    await waitUntil(async () => (await api.request('GET', `/v1/lanes/${LANE}/jobs/${created.body.id}`)).body.state === 'completed', {
      what: 'the job to complete',
    });
    const cancel = await api.request('DELETE', `/v1/lanes/${LANE}/jobs/${created.body.id}`);
    expect(cancel.status).toBe(409);
    expect(cancel.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(cancel.body).toMatchObject({ code: 'job_finished', state: 'completed', type: 'urn:bullpen:problem:job_finished' });
    const read = await api.request('GET', `/v1/lanes/${LANE}/jobs/${created.body.id}`);
    expect(read.body).toMatchObject({ state: 'completed', returnValue: { done: true } });
    expect(await api.redis.hget(jobKeys(api.config.prefix, LANE, created.body.id).job, JOB_FIELD.cancelRequested)).toBeNull();
  });

  it('leaves a dead letter on DELETE of the job, for a purge to remove: 409 job_finished, state failed', async () => {
    const created = await api.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'flaky', attempts: 1 } });
    startWorker(async () => {
      throw new Error('upstream 502');
    });
    await waitUntil(async () => (await api.request('GET', `/v1/lanes/${LANE}/jobs/${created.body.id}`)).body.state === 'failed', {
      what: 'the job to fail',
    });
    const cancel = await api.request('DELETE', `/v1/lanes/${LANE}/jobs/${created.body.id}`);
    expect(cancel.status).toBe(409);
    expect(cancel.body).toMatchObject({ code: 'job_finished', state: 'failed' });
    expect(cancel.body.detail).toContain(`/v1/lanes/${LANE}/dead`);
    const dead = await api.request('GET', `/v1/lanes/${LANE}/dead`);
    expect(dead.body.items.map((item: { id: string }) => item.id)).toEqual([created.body.id]);
  });

  it('never removes a job that finishes as its cancel arrives: each cancel either signals it running or finds it finished', async () => {
    let release = deferred();
    let started = deferred<string>();
    startWorker(async (job) => {
      started.resolve(String(job.id));
      await release.promise;
      return { id: job.id };
    });
    for (let i = 0; i < 20; i += 1) {
      const created = await api.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'quick' } });
      expect(await started.promise).toBe(created.body.id);
      const finishing = release;
      started = deferred<string>();
      release = deferred();
      // The job completes while the cancel is on its way: let go 0 to 4 ms after the request is
      // sent, so that the cancel finds it running in some rounds and finished in others.
      const cancelling = api.request('DELETE', `/v1/lanes/${LANE}/jobs/${created.body.id}`);
      setTimeout(() => finishing.resolve(), i % 5);
      const cancel = await cancelling;
      const read = await waitUntil(
        async () => {
          const reply = await api.request('GET', `/v1/lanes/${LANE}/jobs/${created.body.id}`);
          return reply.body.state === 'completed' ? reply : undefined;
        },
        { what: `job ${i} to complete` },
      );
      expect(read.body.returnValue).toEqual({ id: created.body.id });
      const mark = await api.redis.hget(jobKeys(api.config.prefix, LANE, created.body.id).job, JOB_FIELD.cancelRequested);
      // A mark only when the cancel found the job running.
      expect({ status: cancel.status, marked: mark !== null }).toEqual(cancel.status === 202 ? { status: 202, marked: true } : { status: 409, marked: false });
    }
  });

  it('answers 404 for a job that does not exist or whose id names a BullMQ key', async () => {
    await api.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop' } });
    // The lane's meta hash exists, so GET .../jobs/meta would find a hash if ids were not checked.
    await waitUntil(() => api.redis.exists(laneStateKeys(api.config.prefix, LANE).meta), { what: 'the lane meta hash' });
    for (const id of ['no-such-job', 'meta', 'id', 'wait', 'a:b']) {
      const reply = await api.request('GET', `/v1/lanes/${LANE}/jobs/${encodeURIComponent(id)}`);
      expect([id, reply.status, reply.body.code]).toEqual([id, 404, 'job_not_found']);
      const cancel = await api.request('DELETE', `/v1/lanes/${LANE}/jobs/${encodeURIComponent(id)}`);
      expect([id, cancel.status, cancel.body.code]).toEqual([id, 404, 'job_not_found']);
    }
    expect(await api.redis.exists(laneStateKeys(api.config.prefix, LANE).meta)).toBe(1);
    expect(await api.backlog(LANE)).toBe(1);
  });

  it('pauses and resumes a lane, and lists every lane with its policy and counts', async () => {
    await api.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop' } });
    const paused = await api.request('POST', `/v1/lanes/${LANE}/pause`);
    expect(paused.status).toBe(200);
    expect(paused.body).toEqual({ lane: LANE, paused: true });
    expect(await api.redis.hget(laneStateKeys(api.config.prefix, LANE).meta, 'paused')).toBe('1');
    await api.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop', delayMs: 60_000 } });

    const lanes = await api.request('GET', '/v1/lanes');
    expect(lanes.status).toBe(200);
    expect(lanes.body.lanes.map((l: { name: string }) => l.name)).toEqual(api.config.laneNames);
    const lane = lanes.body.lanes.find((l: { name: string }) => l.name === LANE);
    expect(lane).toMatchObject({
      paused: true,
      // BullMQ 6 keeps a paused lane's jobs in its wait list; the flag is what stops workers.
      counts: { waiting: 1, paused: 0, delayed: 1, active: 0, prioritized: 0, completed: 0, failed: 0 },
      policy: { concurrency: 8, maxQueueSize: 1000 },
    });

    const resumed = await api.request('POST', `/v1/lanes/${LANE}/resume`);
    expect(resumed.body).toEqual({ lane: LANE, paused: false });
    const after = await api.request('GET', '/v1/lanes');
    expect(after.body.lanes.find((l: { name: string }) => l.name === LANE)).toMatchObject({
      paused: false,
      counts: { waiting: 1, delayed: 1 },
    });
  });

  it("shows a lane's counts, which are of every tenant's jobs, only to an operator tenant", async () => {
    await api.request('POST', `/v1/lanes/${LANE}/jobs`, { body: { name: 'noop' } });
    // acme operates the lanes (API_OPERATOR_TENANTS); beta is a tenant like any other.
    const operator = await api.request('GET', '/v1/lanes');
    expect(operator.body.lanes.find((l: { name: string }) => l.name === LANE).counts).toMatchObject({ waiting: 1 });

    const tenant = await api.request('GET', '/v1/lanes', { key: KEYS.beta });
    expect(tenant.status).toBe(200);
    expect(tenant.body.lanes.map((l: { name: string }) => l.name)).toEqual(api.config.laneNames);
    for (const lane of tenant.body.lanes) {
      expect(lane.counts).toBeNull();
      expect(lane).toMatchObject({ paused: false, policy: expect.any(Object) });
    }
  });

  it('serves an OpenAPI 3.1 document built from the request schemas, without authentication', async () => {
    const reply = await api.request('GET', '/openapi.json', { key: null });
    expect(reply.status).toBe(200);
    expect(reply.body.openapi).toBe('3.1.0');
    const job = reply.body.components.schemas.JobSubmission;
    expect(Object.keys(job.properties).sort()).toEqual(
      ['attempts', 'data', 'deadlineMs', 'delayMs', 'idempotencyKey', 'name', 'priority', 'timeoutMs'].sort(),
    );
    expect(job.required).toEqual(['name']);
    expect(job.additionalProperties).toBe(false);
    expect(job.properties.priority).toMatchObject({ type: 'integer', minimum: 1, maximum: 2097151 });
    // Bounds that JSON Schema cannot express are stated in the descriptions.
    expect(job.properties.data.description).toMatch(/nest at most 64 levels deep/);
    expect(job.properties.delayMs.description).toMatch(/shorter than the deadline in effect: deadlineMs, or else the lane's/);
    expect(reply.body.components.schemas.BulkSubmission.properties.jobs.items).toEqual({ $ref: '#/components/schemas/JobSubmission' });
    expect(reply.body.paths['/v1/lanes/{lane}/jobs'].post.responses['429']).toBeDefined();
    // Every problem code the API can answer is listed, 405 included.
    expect(reply.body.components.schemas.Problem.properties.code.enum).toEqual(expect.arrayContaining(['route_not_found', 'method_not_allowed', 'queue_full']));
    expect(reply.body.info.description).toMatch(/405 method_not_allowed with an Allow header/);
  });

  it('answers /healthz and /readyz without authentication', async () => {
    expect((await api.request('GET', '/healthz', { key: null })).status).toBe(200);
    expect((await api.request('GET', '/readyz', { key: null })).status).toBe(200);
  });
});
