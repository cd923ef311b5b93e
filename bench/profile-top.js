#!/usr/bin/env node
// Summarises a V8 .cpuprofile (node --cpu-prof; `node bench/run.js --profile DIR` writes them for
// the API, exporter and worker): the functions with the most self time, and the most inclusive time
// of bullpen's own functions, as file:line — dist lines mapped back to the TypeScript sources
// through their source maps.
//
//   node bench/profile-top.js FILE.cpuprofile [--top 25] [--window START_US END_US] [--callers REGEX]
//
// --window keeps the samples between two monotonic-clock times in microseconds (the bench records
// each drain's and enqueue's as monotonicWindowUs); --callers prints the commonest call chains
// (bullpen, BullMQ and ioredis frames) of the samples whose own function matches REGEX.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { SourceMap } = require('node:module');
const { fileURLToPath } = require('node:url');

const ROOT = path.resolve(__dirname, '..');

const maps = new Map();
function sourceMapOf(file) {
  if (!maps.has(file)) {
    let map = null;
    try {
      map = new SourceMap(JSON.parse(fs.readFileSync(`${file}.map`, 'utf8')));
    } catch {
      // No map beside it: report the JavaScript position.
    }
    maps.set(file, map);
  }
  return maps.get(file);
}

/** "file:line" of a call frame, relative to the repo, through the source map when there is one. */
function where({ url, lineNumber, columnNumber }) {
  if (!url) return '(native)';
  let file = url.startsWith('file://') ? fileURLToPath(url) : url;
  let line = lineNumber + 1;
  const map = path.isAbsolute(file) ? sourceMapOf(file) : null;
  const entry = map?.findEntry(lineNumber, columnNumber);
  if (entry && entry.originalSource) {
    file = entry.originalSource.startsWith('file://') ? fileURLToPath(entry.originalSource) : path.resolve(path.dirname(file), entry.originalSource);
    line = entry.originalLine + 1;
  }
  const rel = path.relative(ROOT, file);
  return `${rel.startsWith('..') ? file : rel}:${line}`;
}

function option(name, count = 1) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv.slice(i + 1, i + 1 + count) : undefined;
}

/** The commonest chains of library and app frames above the samples whose own key matches. */
function callers(profile, keys, parent, pattern, inWindow, top) {
  const chains = new Map();
  let total = 0;
  profile.samples.forEach((id, i) => {
    if (!inWindow[i] || !pattern.test(keys.get(id))) return;
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    const frames = [];
    for (let cur = parent.get(id); cur !== undefined && frames.length < 6; cur = parent.get(cur)) {
      const k = keys.get(cur);
      if (/ (apps|packages|node_modules)\//.test(k)) frames.push(k.replace(/ node_modules\//, ' '));
    }
    const chain = frames.join(' < ') || '(no library frame)';
    chains.set(chain, (chains.get(chain) ?? 0) + dt);
  });
  console.log(`\ncallers of ${pattern}: ${(total / 1000).toFixed(0)} ms`);
  for (const [chain, v] of [...chains].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`${(v / 1000).toFixed(0).padStart(7)} ms  ${chain}`);
  }
}

function main() {
  const file = process.argv[2];
  const top = Number(option('--top')?.[0] ?? 25);
  const window = option('--window', 2)?.map(Number);
  const callersOf = option('--callers')?.[0];
  if (!file || file.startsWith('--')) throw new Error('usage: node bench/profile-top.js FILE.cpuprofile [--top 25] [--window START_US END_US] [--callers REGEX]');
  const profile = JSON.parse(fs.readFileSync(file, 'utf8'));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const key = (n) => `${n.callFrame.functionName || '(anonymous)'} ${where(n.callFrame)}`;
  const keys = new Map(profile.nodes.map((n) => [n.id, key(n)]));

  // Sample i was taken at startTime + the deltas up to and including i.
  const inWindow = [];
  let t = profile.startTime;
  profile.samples.forEach((_, i) => {
    t += profile.timeDeltas[i] ?? 0;
    inWindow.push(!window || (t >= window[0] && t <= window[1]));
  });
  if (window && !inWindow.includes(true)) {
    throw new Error(`no sample in the window: the profile runs from ${profile.startTime} to ${profile.endTime} µs`);
  }

  const self = new Map();
  const inclusive = new Map();
  let total = 0;
  profile.samples.forEach((id, i) => {
    if (!inWindow[i]) return;
    const dt = profile.timeDeltas[i] ?? 0;
    total += dt;
    const k = keys.get(id);
    self.set(k, (self.get(k) ?? 0) + dt);
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const ck = keys.get(cur);
      if (seen.has(ck)) continue;
      seen.add(ck);
      inclusive.set(ck, (inclusive.get(ck) ?? 0) + dt);
    }
  });
  const idle = [...self].filter(([k]) => /^\((idle|program|garbage collector)\)/.test(k)).reduce((a, [, v]) => a + v, 0);
  const pct = (v) => `${((100 * v) / total).toFixed(1).padStart(5)}%`;
  const ms = (v) => `${(v / 1000).toFixed(0).padStart(7)} ms`;
  console.log(`${path.basename(file)}${window ? ' (window)' : ''}: ${(total / 1e6).toFixed(2)} s sampled, ${pct(total - idle).trim()} busy (outside idle/program/GC)`);
  console.log(`\nself time, top ${top}:`);
  for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${ms(v)} ${pct(v)}  ${k}`);
  console.log(`\ninclusive time of bullpen's own code (apps/, packages/), top ${top}:`);
  for (const [k, v] of [...inclusive]
    .filter(([k]) => / (apps|packages)\//.test(k))
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)) {
    console.log(`${ms(v)} ${pct(v)}  ${k}`);
  }
  if (callersOf) callers(profile, keys, parent, new RegExp(callersOf), inWindow, top);
}

main();
