// Tells an ES module among HANDLERS_DIR's files, which the worker does not load. Node 20.19+ may
// try to load one anyway (require of ES modules), and then fails on its first `import` of a package
// the folder does not have, with "Cannot find package '@bullpen/worker'": true, but no hint that
// the file should have been CommonJS.
import { readFileSync } from 'node:fs';
import path from 'node:path';

/** Codes of the errors Node raises for an ES module it cannot require. */
const REQUIRE_ESM_CODES = new Set(['ERR_REQUIRE_ESM', 'ERR_REQUIRE_ASYNC_MODULE']);

/** An `import` or `export` statement at the start of a line: ES module syntax. */
const MODULE_SYNTAX = /^\s*(import\s*[\w{*'"]|export\s+(default|const|let|var|function|async|class|\{|\*))/m;

/**
 * Why the .js or .cjs `file` is an ES module by its package's `"type": "module"` (which makes
 * Node treat a .js file as one), or undefined. Checked before the file is loaded.
 */
export function esModuleByPackageType(file: string): string | undefined {
  if (path.extname(file) !== '.js') return undefined;
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    let text: string | undefined;
    try {
      text = readFileSync(manifest, 'utf8');
    } catch {
      // none here: Node looks further up
    }
    if (text !== undefined) {
      let type: unknown;
      try {
        type = (JSON.parse(text) as { type?: unknown } | null)?.type;
      } catch {
        return undefined; // Node itself reports a package.json it cannot parse
      }
      return type === 'module' ? `"type": "module" in ${manifest}` : undefined;
    }
    if (path.dirname(dir) === dir) return undefined;
  }
}

/** Why the file that failed to load with `err` is an ES module, or undefined when it is not one. */
export function esModuleByLoadFailure(file: string, err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code === 'string' && REQUIRE_ESM_CODES.has(code)) return `Node says ${code}`;
  let source: string;
  try {
    source = readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  return MODULE_SYNTAX.test(source) ? 'it has import or export statements' : undefined;
}
