#!/usr/bin/env node
// The `bullpen` command. It is a committed file rather than dist/main.js because npm links a
// package's bin only if the file exists when it installs, and dist/ exists only after the build.
'use strict';

let cli;
try {
  cli = require('../dist/main.js');
} catch (err) {
  if (err && err.code === 'MODULE_NOT_FOUND' && String(err.message).includes('dist/main.js')) {
    process.stderr.write('bullpen: the CLI is not built: run `npm run build` in the bullpen repository first\n');
    process.exit(2);
  }
  throw err;
}
cli.main();
