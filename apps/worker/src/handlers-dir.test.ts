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
