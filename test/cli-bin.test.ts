// The `bullpen` command as npm installs it: package.json names a committed file as the bin (npm
// links a bin only if its file exists at install time, and dist/ is made later by the build),
// the lock file agrees, and the linked command runs the built CLI.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const BIN = path.join(ROOT, 'apps/cli/bin/bullpen.js');

describe('the bullpen command', () => {
  it('is a committed, executable file that package.json and the lock file both name', () => {
    const pkg = JSON.parse(readFileSync(path.join(ROOT, 'apps/cli/package.json'), 'utf8')) as { bin: Record<string, string> };
    const lock = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, { bin?: Record<string, string> }> };
    expect(pkg.bin).toEqual({ bullpen: 'bin/bullpen.js' });
    expect(lock.packages['apps/cli']?.bin).toEqual(pkg.bin);
    expect(statSync(BIN).mode & 0o111).toBe(0o111);
    expect(readFileSync(BIN, 'utf8')).toMatch(/^#!\/usr\/bin\/env node\n/);
  });

  it('is linked by npm into node_modules/.bin and runs the built CLI', () => {
    const link = path.join(ROOT, 'node_modules/.bin/bullpen');
    expect(realpathSync(link)).toBe(realpathSync(BIN));
    const direct = spawnSync(link, ['--help'], { encoding: 'utf8' });
    expect({ status: direct.status, stderr: direct.stderr }).toEqual({ status: 0, stderr: '' });
    expect(direct.stdout).toMatch(/^usage: bullpen <command>/);
    const npx = spawnSync('npx', ['--no', 'bullpen', 'lanes'], { cwd: ROOT, encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: os.tmpdir(), BULLPEN_API_URL: 'localhost:3000' } });
    // The CLI itself answered: a usage error about the URL.
    expect(npx.status).toBe(2);
    expect(npx.stderr).toMatch(/BULLPEN_API_URL: expected an http:\/\/ or https:\/\/ URL/);
    // README's `npx bullpen -- --help`, as written: npm 11 passes the `--` on to the command (an
    // npx option such as --no before the name would make npm take it as its own). npm_config_yes
    // is --no's setting: never install a package of that name.
    const help = spawnSync('npx', ['bullpen', '--', '--help'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '', HOME: os.tmpdir(), npm_config_yes: 'false' },
    });
    expect({ status: help.status, stdout: help.stdout }).toEqual({ status: 0, stdout: expect.stringMatching(/^usage: bullpen <command>/) });
  });

  it('says the CLI is not built when dist/ is missing', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-bin-'));
    try {
      mkdirSync(path.join(dir, 'bin'));
      copyFileSync(BIN, path.join(dir, 'bin/bullpen.js'));
      const run = spawnSync(process.execPath, [path.join(dir, 'bin/bullpen.js'), '--help'], { encoding: 'utf8' });
      expect(run.status).toBe(2);
      expect(run.stderr).toBe('bullpen: the CLI is not built: run `npm run build` in the bullpen repository first\n');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
