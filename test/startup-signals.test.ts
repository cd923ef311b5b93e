// Signals that reach an app while it starts, as a key rotation's `kill -HUP` or a `docker stop`
// may: each app is held while it loads its modules (the seconds a busy machine takes), signalled,
// then let go. A SIGHUP must neither kill it nor be lost; a SIGTERM must stop it cleanly.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cleanupPrefix } from './support/config';
import { API_MAIN, EXPORTER_MAIN, REPO_ROOT, WORKER_MAIN, spawnApi, spawnExporter, spawnWorkerApp, type AppProcess } from './support/prometheus';
import { redisUrl, testPrefix, waitUntil } from './support/wait';

const HOLD = path.join(REPO_ROOT, 'test/fixtures/preload/hold-core-load.js');
const LANE = 'tool_call';
const OLD_KEY = 'acme-key-old-0001';
const NEW_KEY = 'beta-key-new-0001';

describe('signals while an app starts', () => {
  let dir: string;
  let keysFile: string;
  let prefix: string;
  const apps: AppProcess[] = [];

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-startup-signals-'));
    keysFile = path.join(dir, 'keys.txt');
    prefix = testPrefix('startsig');
  });

  afterEach(async () => {
    // Lets go of an app a failed test left held, so that it can be killed.
    writeFileSync(path.join(dir, 'release'), '');
    await Promise.all(apps.splice(0).map((app) => app.kill('SIGKILL')));
    rmSync(dir, { recursive: true, force: true });
    await cleanupPrefix(prefix);
  });

  /** The environment that holds an app while it loads @bullpen/core, and what lets it go. */
  const held = () => {
    const pidFile = path.join(dir, 'pid');
    const releaseFile = path.join(dir, 'release');
    return {
      env: { NODE_OPTIONS: `--require ${HOLD}`, HOLD_PID_FILE: pidFile, HOLD_RELEASE_FILE: releaseFile },
      /** The held app's pid, once it is held. */
      pid: async () => Number(await waitUntil(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8'), { what: 'the app to be held while loading' })),
      release: () => writeFileSync(releaseFile, ''),
    };
  };

  /** Starts an app held, sends `signal` while it is held, lets it go, and waits until it is ready. */
  async function signalledWhileStarting(signal: NodeJS.Signals, start: (env: Record<string, string>) => Promise<AppProcess>): Promise<AppProcess> {
    const hold = held();
    const started = start({ REDIS_URL: redisUrl(), BULLPEN_PREFIX: prefix, ...hold.env });
    started.catch(() => undefined);
    process.kill(await hold.pid(), signal);
    hold.release();
    const app = await started;
    apps.push(app);
    return app;
  }

  const submit = async (api: AppProcess, key: string) =>
    (
      await fetch(`${api.url}/v1/lanes/${LANE}/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'noop' }),
      })
    ).status;

  it('an API sent SIGHUP while it starts keeps starting, becomes ready and then reloads API_KEYS_FILE', async () => {
    writeFileSync(keysFile, `acme:${OLD_KEY}\n`);
    const api = await signalledWhileStarting('SIGHUP', async (env) => {
      // The key added before the SIGHUP, as a rotation does.
      writeFileSync(keysFile, `acme:${OLD_KEY}\nbeta:${NEW_KEY}\n`);
      return spawnApi({ ...env, API_KEYS_FILE: keysFile });
    });
    expect(await submit(api, NEW_KEY)).toBe(201);
    expect(await submit(api, OLD_KEY)).toBe(201);
    const reloads = api.logs().filter((line) => line.msg === 'api keys reloaded');
    expect(reloads).toEqual([expect.objectContaining({ level: 'info', file: keysFile, keys: 2, tenants: 2 })]);
    expect(api.exitCode()).toBeNull();

    // And a SIGHUP after start-up reloads as before.
    writeFileSync(keysFile, `beta:${NEW_KEY}\n`);
    process.kill(api.pid, 'SIGHUP');
    await waitUntil(() => api.logs().filter((line) => line.msg === 'api keys reloaded').length === 2, { what: 'the second reload' });
    expect(await submit(api, OLD_KEY)).toBe(401);
  });

  it('an exporter sent SIGHUP while it starts keeps starting, reads the streams and reloads its tenants', async () => {
    writeFileSync(keysFile, `acme:${OLD_KEY}\nbeta:${NEW_KEY}\n`);
    const exporter = await signalledWhileStarting('SIGHUP', (env) => spawnExporter({ ...env, API_KEYS_FILE: keysFile }));
    expect(exporter.logs().filter((line) => line.msg === 'api keys reloaded')).toEqual([
      expect.objectContaining({ file: keysFile, keys: 2, tenantLabels: ['acme', 'beta'] }),
    ]);
    expect(exporter.exitCode()).toBeNull();
  });

  it('a worker sent SIGHUP while it starts keeps starting, runs its lanes and says it has nothing to reload', async () => {
    const worker = await signalledWhileStarting('SIGHUP', (env) => spawnWorkerApp(env));
    expect(worker.logs().map((line) => line.msg)).toContain('SIGHUP: the worker has nothing to reload (it reads its configuration at start); carrying on');
    expect(worker.exitCode()).toBeNull();
  });

  it.each([
    ['api', API_MAIN],
    ['exporter', EXPORTER_MAIN],
    ['worker', WORKER_MAIN],
  ])('a %s sent SIGTERM while it starts stops with status 0 rather than dying of the signal, or ignoring it as PID 1', async (_app, main) => {
    writeFileSync(keysFile, `acme:${OLD_KEY}\n`);
    const hold = held();
    const child = spawn(process.execPath, [main], {
      env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', EXPORTER_PORT: '0', WORKER_METRICS_PORT: '0', REDIS_URL: redisUrl(), BULLPEN_PREFIX: prefix, API_KEYS_FILE: keysFile, ...hold.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    try {
      process.kill(await hold.pid(), 'SIGTERM');
      hold.release();
      expect(await exited).toEqual({ code: 0, signal: null });
      // Node hands the signal on once the app's code yields: to the start-up catcher, which exits at
      // once, or to the app's own stop if that is in place by then.
      expect(output).toMatch(/SIGTERM while starting: exiting before serving anything|"signal":"SIGTERM"/);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
