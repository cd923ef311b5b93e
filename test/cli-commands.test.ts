// Each CLI command against a running API (and a worker, so that jobs finish and fail).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger, jobKeys } from '@bullpen/core';
import { startTestApi, KEYS, type TestApi } from '../apps/api/test/harness';
import { builtinHandlers } from '../apps/worker/src/handlers';
import { HandlerRegistry } from '../apps/worker/src/registry';
import { WorkerRuntime } from '../apps/worker/src/runtime';
import { bullpen } from './support/cli';
import { waitUntil } from './support/wait';

describe('the bullpen CLI against a running API', () => {
  let api: TestApi;
  let runtime: WorkerRuntime;
  let env: Record<string, string>;
  let dir: string;

  beforeAll(async () => {
    api = await startTestApi({
      lanesFile: { lanes: { tool_call: { concurrency: 2, attempts: 1 }, critic: { concurrency: 1, maxQueueSize: 3 } } },
    });
    runtime = new WorkerRuntime({
      config: api.config,
      logger: createLogger('worker', 'error'),
      registry: new HandlerRegistry().registerAll(builtinHandlers()),
      lanes: ['tool_call'],
    });
    await runtime.start();
    env = { BULLPEN_API_URL: api.url, BULLPEN_API_KEY: KEYS.acme };
    dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-cli-'));
  });
  afterAll(async () => {
    await runtime.close(2000);
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('enqueues a job, then shows it completed with `job`', async () => {
    const run = await bullpen(['enqueue', 'tool_call', 'sleep', '--data', '{"ms":10}'], env);
    expect(run.code).toBe(0);
    const created = JSON.parse(run.stdout) as { id: string; lane: string };
    expect(created.lane).toBe('tool_call');
    const job = await waitUntil(async () => {
      const shown = await bullpen(['job', 'tool_call', created.id], env);
      const parsed = JSON.parse(shown.stdout) as { state: string; returnValue: unknown };
      return parsed.state === 'completed' ? parsed : undefined;
    });
    expect(job.returnValue).toEqual({ sleptMs: 10 });
  });

  it('says on stderr when an enqueue with an idempotency key was a replay of a job already in, and prints that job', async () => {
    const args = ['enqueue', 'tool_call', 'noop', '--idempotency-key', `replay-${Date.now()}`];
    const first = await bullpen(args, env);
    expect({ code: first.code, stderr: first.stderr }).toEqual({ code: 0, stderr: '' });
    const created = JSON.parse(first.stdout) as { id: string };
    const again = await bullpen(args, env);
    expect(again.code).toBe(0);
    expect((JSON.parse(again.stdout) as { id: string }).id).toBe(created.id);
    expect(again.stderr).toBe(`enqueue tool_call: replayed: idempotency key "${args[4]}" names job ${created.id}, already enqueued; nothing was added\n`);
  });

  it('enqueues a file in bulk and sums up what was accepted and rejected', async () => {
    const file = path.join(dir, 'jobs.jsonl');
    writeFileSync(file, ['{"name":"noop"}', '{"name":"noop"}', 'not json', '{"name":"9bad"}', '{"name":"noop"}', '{"name":"noop"}'].join('\n'));
    // critic holds at most 3 jobs and no worker serves it here: the fourth valid job is refused,
    // at once with --full-wait 0. Lines were refused: exit 5, each named on stderr.
    const run = await bullpen(['enqueue', 'critic', '--file', file, '--full-wait', '0s'], env);
    expect(run.code).toBe(5);
    expect(run.stdout).toMatch(/accepted 3, rejected 3 \(.*queue_full: 1.*\)/);
    expect(run.stdout).toMatch(/malformed_line: 1/);
    expect(run.stdout).toMatch(/validation_failed: 1/);
    expect(run.stderr).toMatch(/^line 3: malformed_line .*\nline 4: validation_failed .*\nline 6: queue_full /m);
  });

  it('lists lanes with live counts', async () => {
    const run = await bullpen(['lanes'], env);
    expect(run.code).toBe(0);
    const body = JSON.parse(run.stdout) as { lanes: Array<{ lane?: string; name?: string; counts: Record<string, number> }> };
    const critic = body.lanes.find((l) => (l.lane ?? l.name) === 'critic');
    expect(critic?.counts.waiting).toBe(3);
  });

  it("lists lanes without counts for a tenant that is no operator, and says why", async () => {
    const run = await bullpen(['lanes'], { ...env, BULLPEN_API_KEY: KEYS.beta });
    expect(run.code).toBe(0);
    const body = JSON.parse(run.stdout) as { lanes: Array<{ name: string; counts: unknown }> };
    expect(body.lanes.length).toBeGreaterThan(0);
    expect(body.lanes.every((l) => l.counts === null)).toBe(true);
    expect(run.stderr).toMatch(/operator tenants only \(API_OPERATOR_TENANTS\)/);
  });

  it('pauses and resumes a lane for an operator tenant, and refuses others, an unknown lane and a wrong key with what to do', async () => {
    const pausedOf = async () => {
      const lanes = JSON.parse((await bullpen(['lanes'], env)).stdout) as { lanes: Array<{ name: string; paused: boolean }> };
      return lanes.lanes.find((l) => l.name === 'critic')?.paused;
    };
    const paused = await bullpen(['pause', 'critic'], env);
    expect({ code: paused.code, body: JSON.parse(paused.stdout) }).toEqual({ code: 0, body: { lane: 'critic', paused: true } });
    expect(paused.stderr).toMatch(/lane critic is paused: workers take no new jobs from it .*`bullpen resume critic` undoes it/);
    expect(await pausedOf()).toBe(true);

    // beta is a tenant like any other: a lane is paused for every tenant, so only operators may.
    const refused = await bullpen(['resume', 'critic'], { ...env, BULLPEN_API_KEY: KEYS.beta });
    expect(refused.code).toBe(4);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toMatch(/^bullpen: 403: operator_only - Tenant beta may not resume lanes.*\(use the key of a tenant API_OPERATOR_TENANTS names\)\n$/);
    expect(await pausedOf()).toBe(true);

    const resumed = await bullpen(['resume', 'critic'], env);
    expect({ code: resumed.code, body: JSON.parse(resumed.stdout) }).toEqual({ code: 0, body: { lane: 'critic', paused: false } });
    expect(await pausedOf()).toBe(false);

    const unknown = await bullpen(['pause', 'no_such_lane'], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/404: lane_not_found .*\(`bullpen lanes` lists the lanes this key may use\)/);
    const wrongKey = await bullpen(['pause', 'critic'], { ...env, BULLPEN_API_KEY: 'not-a-key-at-all' });
    expect(wrongKey.code).toBe(4);
    expect(wrongKey.stderr).toMatch(/401: unauthorized/);
    expect((await bullpen(['pause'], env)).code).toBe(2);
    expect(await pausedOf()).toBe(false);
  });

  it('lists, redrives and purges dead letters', async () => {
    const failed = await bullpen(['enqueue', 'tool_call', 'fail', '--data', '{"kind":"permanent","message":"no"}'], env);
    const id = (JSON.parse(failed.stdout) as { id: string }).id;
    await waitUntil(async () => {
      const shown = JSON.parse((await bullpen(['job', 'tool_call', id], env)).stdout) as { state: string };
      return shown.state === 'failed';
    });
    const listed = await bullpen(['dead', 'tool_call'], env);
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as { items: Array<{ id: string }> }).items.map((i) => i.id)).toContain(id);
    const redriven = await bullpen(['dead', 'tool_call', '--redrive', '--ids', id], env);
    expect(redriven.code).toBe(0);
    expect(JSON.parse(redriven.stdout)).toMatchObject({ redriven: 1 });
    // It runs again (with fresh attempts), fails again and is back among the dead.
    await waitUntil(async () => {
      const dead = JSON.parse((await bullpen(['dead', 'tool_call'], env)).stdout) as { items: Array<{ id: string }> };
      const shown = JSON.parse((await bullpen(['job', 'tool_call', id], env)).stdout) as { state: string; attempts: unknown[] };
      return dead.items.some((i) => i.id === id) && shown.state === 'failed' && shown.attempts.length === 2;
    });
    const purged = await bullpen(['dead', 'tool_call', '--purge', '--ids', id], env);
    expect(purged.code).toBe(0);
    expect(JSON.parse(purged.stdout)).toMatchObject({ purged: 1 });
    const after = JSON.parse((await bullpen(['dead', 'tool_call'], env)).stdout) as { items: Array<{ id: string }> };
    expect(after.items.map((i) => i.id)).not.toContain(id);
  });

  /** Enqueues `n` jobs that fail for good and waits until they are dead; returns their ids. */
  async function deadLetters(n: number): Promise<string[]> {
    const ids: string[] = [];
    for (let i = 0; i < n; i += 1) {
      const run = await bullpen(['enqueue', 'tool_call', 'fail', '--data', '{"kind":"permanent","message":"no"}'], env);
      ids.push((JSON.parse(run.stdout) as { id: string }).id);
    }
    await waitUntil(async () => {
      const dead = JSON.parse((await bullpen(['dead', 'tool_call', '--all'], env)).stdout) as { items: Array<{ id: string }> };
      return ids.every((id) => dead.items.some((i) => i.id === id));
    });
    return ids;
  }

  it('refuses to redrive or purge without --ids or --all, and an --ids that names no id, touching nothing', async () => {
    const ids = await deadLetters(1);
    for (const args of [
      ['--purge', '--ids', ''],
      ['--redrive', '--ids', ''],
      ['--purge', '--ids', ' , ,'],
      ['--purge'],
      ['--redrive'],
      ['--purge', '--ids', ids[0] ?? '', '--all'],
    ]) {
      const refused = await bullpen(['dead', 'tool_call', ...args], env);
      expect({ args, code: refused.code, stdout: refused.stdout }).toEqual({ args, code: 2, stdout: '' });
      expect(refused.stderr).toMatch(/--ids: expected one or more comma-separated job ids|name the dead letters with --ids id1,id2, or pass --all|--ids or --all, not both/);
    }
    const listed = JSON.parse((await bullpen(['dead', 'tool_call', '--all'], env)).stdout) as { items: Array<{ id: string }> };
    expect(listed.items.map((i) => i.id)).toContain(ids[0]);

    const purged = await bullpen(['dead', 'tool_call', '--purge', '--all'], env);
    expect(purged.code).toBe(0);
    expect((JSON.parse(purged.stdout) as { purged: number }).purged).toBeGreaterThanOrEqual(1);
    const after = JSON.parse((await bullpen(['dead', 'tool_call'], env)).stdout) as { items: unknown[] };
    expect(after.items).toEqual([]);
  });

  it('redrives and purges all dead letters of a lane with --all', async () => {
    await bullpen(['dead', 'tool_call', '--purge', '--all'], env);
    const [id] = await deadLetters(1);
    const attemptsOf = async () => {
      const shown = JSON.parse((await bullpen(['job', 'tool_call', id ?? ''], env)).stdout) as { state: string; attempts: unknown[] };
      return shown.state === 'failed' ? shown.attempts.length : 0;
    };
    const redriven = await bullpen(['dead', 'tool_call', '--redrive', '--all'], env);
    expect(redriven.code).toBe(0);
    expect(JSON.parse(redriven.stdout)).toMatchObject({ redriven: 1, results: [{ id, status: 'redriven' }] });
    await waitUntil(async () => (await attemptsOf()) === 2);
    const purged = await bullpen(['dead', 'tool_call', '--purge', '--all'], env);
    expect(purged.code).toBe(0);
    expect(JSON.parse(purged.stdout)).toMatchObject({ purged: 1, results: [{ id, status: 'purged' }] });
  });

  it('exits 5, saying when to run it again, when a redrive of all left dead letters held by another call', async () => {
    await bullpen(['dead', 'tool_call', '--purge', '--all'], env);
    const [held, free] = await deadLetters(2);
    // As if a redrive cut off by an API restart still held it.
    const claim = jobKeys(api.config.prefix, 'tool_call', held ?? '').deadLetterClaim;
    await api.redis.set(claim, '1', 'PX', 20_000);
    try {
      const run = await bullpen(['dead', 'tool_call', '--redrive', '--all'], env);
      expect(run.code).toBe(5);
      expect(JSON.parse(run.stdout)).toMatchObject({ redriven: 1, claimed: 1, results: expect.arrayContaining([{ id: held, status: 'claimed' }, { id: free, status: 'redriven' }]) });
      expect(run.stderr).toMatch(
        /^bullpen: dead tool_call --redrive --all: 1 redriven, 1 not \(claimed: 1\): claimed ones are held by another redrive or purge, or by one an API restart cut off; run bullpen dead tool_call --redrive --all --failed-before \d+ in (19|20) s\n$/,
      );
      const missing = await bullpen(['dead', 'tool_call', '--purge', '--ids', 'no-such-job'], env);
      expect(missing.code).toBe(5);
      expect(missing.stderr).toMatch(/0 purged, 1 not \(not_found: 1\): those ids name no dead letter of yours/);
    } finally {
      await api.redis.del(claim);
    }
  });

  it('purges more ids than the API takes in one call, in several, and sums them up as one answer', async () => {
    await bullpen(['dead', 'tool_call', '--purge', '--all'], env);
    const [id = ''] = await deadLetters(1);
    // 1,500 ids no job has, and between them one dead letter: the API takes 1,000 ids a call.
    const ids = Array.from({ length: 1500 }, (_, i) => `no-such-job-${i}`);
    ids.splice(1200, 0, id);
    const run = await bullpen(['dead', 'tool_call', '--purge', '--ids', ids.join(',')], env);
    expect(run.code).toBe(5);
    const answer = JSON.parse(run.stdout) as { purged: number; notFound: number; results: Array<{ id: string; status: string }> };
    expect(answer).toMatchObject({ purged: 1, notFound: 1500, notDead: 0, claimed: 0 });
    expect(answer.results.map((r) => r.id)).toEqual(ids);
    expect(answer.results[1200]).toEqual({ id, status: 'purged' });
    expect(run.stderr).toBe('bullpen: dead tool_call --purge: 1 purged, 1500 not (not_found: 1500): those ids name no dead letter of yours (not_found: no job of yours; not_dead: a job that is not dead)\n');
    const twice = await bullpen(['dead', 'tool_call', '--purge', '--ids', `${id},x,${id}`], env);
    expect({ code: twice.code, stdout: twice.stdout, stderr: twice.stderr }).toEqual({ code: 2, stdout: '', stderr: `bullpen: --ids: "${id}" is given twice\n` });
  });

  it('lists dead letters a page at a time with --limit and --cursor, and every page with --all', async () => {
    await bullpen(['dead', 'tool_call', '--purge', '--all'], env);
    const ids = await deadLetters(3);
    const first = await bullpen(['dead', 'tool_call', '--limit', '2'], env);
    expect(first.code).toBe(0);
    const page = JSON.parse(first.stdout) as { items: Array<{ id: string }>; nextCursor: string | null };
    expect(page.items).toHaveLength(2);
    expect(page.nextCursor).toEqual(expect.any(String));
    expect(first.stderr).toContain(`--cursor=${page.nextCursor}`);
    const second = JSON.parse((await bullpen(['dead', 'tool_call', '--limit', '2', '--cursor', page.nextCursor ?? ''], env)).stdout) as {
      items: Array<{ id: string }>;
      nextCursor: string | null;
    };
    expect([...page.items, ...second.items].map((i) => i.id).sort()).toEqual([...ids].sort());
    const all = JSON.parse((await bullpen(['dead', 'tool_call', '--all', '--limit', '1'], env)).stdout) as { items: Array<{ id: string }>; nextCursor: null };
    expect(all.items.map((i) => i.id).sort()).toEqual([...ids].sort());
    expect(all.nextCursor).toBeNull();
    expect((await bullpen(['dead', 'tool_call', '--limit', '0'], env)).code).toBe(2);
  });

  it('exits 4 on a wrong key, 1 on an API error and 3 when the API is unreachable', async () => {
    const wrong = await bullpen(['lanes'], { ...env, BULLPEN_API_KEY: 'not-a-key-at-all' });
    expect(wrong.code).toBe(4);
    expect(wrong.stderr).toMatch(/401: unauthorized/);
    const missing = await bullpen(['job', 'tool_call', 'no-such-job'], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/404: job_not_found/);
    const down = await bullpen(['lanes'], { ...env, BULLPEN_API_URL: 'http://127.0.0.1:9' });
    expect(down.code).toBe(3);
  });
});
