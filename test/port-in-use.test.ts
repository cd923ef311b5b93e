// An app whose port is taken (another process, a second copy started by mistake) stops with one
// line naming the variable that chose the port, as for any other configuration error, instead
// of a stack trace; one whose HOST is a name that does not resolve, with one line naming HOST.
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import { cleanupPrefix } from './support/config';
import { redisUrl, testPrefix } from './support/wait';

const ROOT = path.resolve(__dirname, '..');
const PREFIX = testPrefix('port');

function run(app: string, env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [path.join(ROOT, `apps/${app}/dist/main.js`)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', REDIS_URL: redisUrl(), BULLPEN_PREFIX: PREFIX, HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code, stderr })));
}

describe('an app whose port is in use', () => {
  let taken: Server;
  let port: number;
  beforeAll(async () => {
    taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    port = (taken.address() as { port: number }).port;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => taken.close(() => resolve()));
    await cleanupPrefix(PREFIX);
  });

  it.each([
    ['api', 'PORT', { API_KEYS: 'acme:aaaaaaaaaa' }],
    ['worker', 'WORKER_METRICS_PORT', {}],
    ['exporter', 'EXPORTER_PORT', {}],
  ])('stops the %s with one line naming %s', async (app, variable, extra) => {
    const { code, stderr } = await run(app, { [variable]: String(port), ...extra });
    expect(code).toBe(1);
    expect(stderr).toContain(`${variable}: cannot listen on 127.0.0.1:${port}: it is in use by another process (EADDRINUSE)`);
    expect(stderr).not.toMatch(/^\s+at /m);
  });
});

describe('an app whose HOST does not resolve', () => {
  afterAll(() => cleanupPrefix(PREFIX));

  it.each([
    ['api', 'PORT', { API_KEYS: 'acme:aaaaaaaaaa' }],
    ['worker', 'WORKER_METRICS_PORT', {}],
    ['exporter', 'EXPORTER_PORT', {}],
  ])('stops the %s with one line naming HOST', async (app, variable, extra) => {
    const { code, stderr } = await run(app, { HOST: 'nope.invalid', [variable]: '0', ...extra });
    expect(code).toBe(1);
    // ENOTFOUND, or EAI_AGAIN where no name service answers.
    expect(stderr).toMatch(new RegExp(`HOST: cannot listen on nope.invalid:0 \\(${variable}\\): "nope.invalid" .* \\((ENOTFOUND|EAI_AGAIN)\\); set HOST to`));
    expect(stderr).not.toMatch(/^\s+at /m);
  });
});
