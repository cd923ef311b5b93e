// Runs one of the bench's scripts (bench/run.js, bench/soak.js) as a user would, against the suite's
// Redis, and collects what it printed. A run past `timeoutMs` gets SIGTERM, on which the script
// stops every process it started.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { redisUrl } from './wait';

export const REPO_ROOT = path.resolve(__dirname, '../..');

export interface ScriptRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** stdout and stderr, interleaved as they came. */
  output: string;
}

export function runBenchScript(script: string, args: string[], timeoutMs: number): Promise<ScriptRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(REPO_ROOT, 'bench', script), ...args], {
      cwd: REPO_ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, REDIS_URL: redisUrl() },
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: timeoutMs,
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve({ code, signal, output }));
  });
}
