import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError } from '@bullpen/core';
import { defineHandler, isHandler } from './handler';
import { loadHandlersDir } from './handlers-dir';
import { HandlerRegistry } from './registry';

const fixtures = path.resolve(__dirname, '../../../test/fixtures');

describe('loadHandlersDir', () => {
  it('loads every handler exported by the .js files of the folder', () => {
    const loaded = loadHandlersDir(path.join(fixtures, 'handlers'));
    expect(loaded.map(({ handler, file }) => [handler.name, path.basename(file)])).toEqual([
      ['noisy', 'noisy.js'],
      ['probe', 'probe.js'],
      ['report_progress', 'report-progress.js'],
      ['stray', 'stray.js'],
    ]);
    expect(isHandler(loaded[0]!.handler)).toBe(true);
  });

  it('names the folder and the file that exports no handler', () => {
    expect(() => loadHandlersDir(path.join(fixtures, 'no-handler'))).toThrow(ConfigError);
    expect(() => loadHandlersDir(path.join(fixtures, 'no-handler'))).toThrow(
      /HANDLERS_DIR \(.*no-handler\): file helper\.js: expected it to export a handler made by defineHandler/,
    );
  });

  describe('an ES module among the files', () => {
    const dirs: string[] = [];
    afterEach(() => {
      for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
    });
    function folder(files: Record<string, string>): string {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'bullpen-esm-handlers-'));
      dirs.push(dir);
      for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
      return dir;
    }
    const esm = "import { defineHandler } from '@bullpen/worker';\nexport default defineHandler({ name: 'esm_job', run: () => 1 });\n";

    it('is refused, saying ES modules are not loaded, when its folder\'s package.json says "type": "module"', () => {
      const dir = folder({ 'package.json': '{"type":"module"}', 'job.js': esm });
      expect(() => loadHandlersDir(dir)).toThrow(ConfigError);
      expect(() => loadHandlersDir(dir)).toThrow(
        `HANDLERS_DIR (${dir}): file job.js is an ES module ("type": "module" in ${path.join(dir, 'package.json')}), and ES modules are not loaded: build it to CommonJS (require and module.exports) first`,
      );
    });

    it("that fails to load is named as one, by its import and export statements or Node's ERR_REQUIRE_ESM", () => {
      const dir = folder({ 'job.js': esm });
      expect(() => loadHandlersDir(dir)).toThrow(
        new RegExp(`^HANDLERS_DIR \\(${dir}\\): file job\\.js is an ES module \\(.+\\), and ES modules are not loaded: build it to CommonJS`),
      );
    });

    it('leaves a CommonJS file that fails to load with its own error', () => {
      const dir = folder({ 'job.js': "require('./missing-helper');\n" });
      expect(() => loadHandlersDir(dir)).toThrow(/file job\.js failed to load: Cannot find module '\.\/missing-helper'/);
    });
  });

  it('names HANDLERS_DIR when the folder cannot be read', () => {
    expect(() => loadHandlersDir('/nonexistent/handlers')).toThrow(/HANDLERS_DIR \(\/nonexistent\/handlers\): expected a readable folder/);
  });
});

describe('HandlerRegistry', () => {
  it('refuses a second handler with the same name, naming both sources', () => {
    const registry = new HandlerRegistry().register(defineHandler({ name: 'x', run: () => 1 }), 'first.js');
    expect(() => registry.register(defineHandler({ name: 'x', run: () => 2 }), 'second.js')).toThrow(
      'handler name "x" is registered twice: by first.js and by second.js',
    );
    expect(registry.names()).toEqual(['x']);
  });
});
