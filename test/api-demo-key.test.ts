// The README's demo key is public: an API or exporter that holds it says so, at start and after a
// SIGHUP brings it in through API_KEYS_FILE, naming the tenants that hold it; one without it is quiet.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEMO_API_KEY, hashApiKey } from '@bullpen/core';
import { cleanupPrefix } from './support/config';
import { spawnApi, spawnExporter, type AppProcess } from './support/prometheus';
import { redisUrl, testPrefix, waitUntil } from './support/wait';

const OWN_KEY = 'acme-key-own-0001';
const WARNING = /^an API key is the public demo key "bullpen-demo-key": /;

describe('the public demo key', () => {
  let dir: string;
  let prefix: string;
  const apps: AppProcess[] = [];

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-demo-key-'));
    prefix = testPrefix('demokey');
  });

  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.kill('SIGKILL')));
    rmSync(dir, { recursive: true, force: true });
    await cleanupPrefix(prefix);
  });

  const warnings = (app: AppProcess) => app.logs().filter((line) => WARNING.test(String(line.msg)));
  const started = async (spawned: Promise<AppProcess>) => {
    const app = await spawned;
    apps.push(app);
    return app;
  };

  it('makes the API log a warning at start naming the tenant whose key it is', async () => {
    const api = await started(spawnApi({ REDIS_URL: redisUrl(), BULLPEN_PREFIX: prefix, API_KEYS: `demo:${DEMO_API_KEY},acme:${OWN_KEY}` }));
    expect(warnings(api)).toEqual([expect.objectContaining({ level: 'warn', service: 'api', tenants: ['demo'] })]);
  });

  it('is recognised by its hash too, and makes the exporter warn at start', async () => {
    const exporter = await started(
      spawnExporter({ REDIS_URL: redisUrl(), BULLPEN_PREFIX: prefix, API_KEYS: `trial:sha256=${hashApiKey(DEMO_API_KEY).toString('hex')}` }),
    );
    expect(warnings(exporter)).toEqual([expect.objectContaining({ level: 'warn', service: 'exporter', tenants: ['trial'] })]);
  });

  it('makes the API warn after a SIGHUP reload brings it in, and not before', async () => {
    const keysFile = path.join(dir, 'keys.txt');
    writeFileSync(keysFile, `acme:${OWN_KEY}\n`);
    const api = await started(spawnApi({ REDIS_URL: redisUrl(), BULLPEN_PREFIX: prefix, API_KEYS_FILE: keysFile }));
    expect(warnings(api)).toEqual([]);

    writeFileSync(keysFile, `acme:${OWN_KEY}\ndemo:${DEMO_API_KEY}\n`);
    process.kill(api.pid, 'SIGHUP');
    await waitUntil(() => api.logs().some((line) => line.msg === 'api keys reloaded'), { what: 'the reload' });
    await waitUntil(() => warnings(api).length === 1, { what: 'the demo key warning' });
    expect(warnings(api)[0]).toMatchObject({ level: 'warn', tenants: ['demo'] });
  });
});
