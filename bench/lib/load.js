// A closed-loop load generator: `inFlight` loops, each starting its next operation when the last
// one finished, for a warm-up and then a measured window. Used the same way for the REST API, the
// bare Express floor and bare queue.add, so their numbers compare.
'use strict';
const http = require('node:http');
const { performance } = require('node:perf_hooks');
const { summarize, round } = require('./stats');

/**
 * Runs `op` (async, resolving true for a success) from `inFlight` loops for warmupMs + durationMs.
 * Operations that finish inside the measured window count toward the rate and the latencies.
 * `cpuOf` (a function returning a process's CPU seconds) is read at both ends of the window, which
 * gives that process's CPU per successful operation (`serverCpuMsPerOp`): steadier than the rate
 * on a shared machine.
 */
async function closedLoop({ op, inFlight, durationMs, warmupMs, cpuOf }) {
  const start = performance.now();
  const startUs = Number(process.hrtime.bigint() / 1000n);
  const measureFrom = start + warmupMs;
  const end = measureFrom + durationMs;
  const latencies = [];
  let ok = 0;
  let errors = 0;
  let firstError;
  const cpu = [];
  const timers = cpuOf ? [setTimeout(() => cpu.push(cpuOf()), warmupMs), setTimeout(() => cpu.push(cpuOf()), warmupMs + durationMs)] : [];
  const loop = async () => {
    while (performance.now() < end) {
      const t0 = performance.now();
      let good = false;
      try {
        good = await op();
      } catch (err) {
        firstError ??= err;
      }
      const t1 = performance.now();
      if (t1 < measureFrom || t1 > end) continue;
      if (good) {
        ok += 1;
        latencies.push(t1 - t0);
      } else {
        errors += 1;
      }
    }
  };
  await Promise.all(Array.from({ length: inFlight }, loop));
  for (const timer of timers) clearTimeout(timer);
  // The loops can all finish before a late end-of-window timer fires (a short window on a busy
  // machine): the window has ended, so read it now.
  if (cpuOf && cpu.length === 1) cpu.push(cpuOf());
  if (ok === 0) throw new Error(`no operation succeeded in the measured window${firstError ? `: ${firstError.message}` : ''}`);
  const latency = summarize(latencies);
  return {
    perSecond: round(ok / (durationMs / 1000)),
    ok,
    errors,
    ...(firstError ? { firstError: String(firstError.message ?? firstError) } : {}),
    p50Ms: latency.p50Ms,
    p99Ms: latency.p99Ms,
    meanMs: latency.meanMs,
    maxMs: latency.maxMs,
    ...(cpu.length === 2 && cpu.every((c) => c !== undefined) ? { serverCpuMsPerOp: round(((cpu[1] - cpu[0]) * 1000) / ok, 4) } : {}),
    // The measured window on the monotonic clock V8 profiles use: node bench/profile-top.js --window.
    monotonicWindowUs: [startUs + Math.round(warmupMs * 1000), startUs + Math.round((warmupMs + durationMs) * 1000)],
  };
}

/** A keep-alive HTTP client for one origin, with at most maxSockets connections. */
function httpClient(baseUrl, { maxSockets = 64, timeoutMs = 30_000 } = {}) {
  const { hostname, port } = new URL(baseUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets });
  /** Resolves with { status, body } (body a string unless discard is set). */
  const request = (method, path, { headers = {}, body, discard = false } = {}) =>
    new Promise((resolve, reject) => {
      const req = http.request({ agent, host: hostname, port, method, path, headers }, (res) => {
        if (discard) {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode, body: '' }));
        } else {
          const chunks = [];
          res.on('data', (chunk) => chunks.push(chunk));
          res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
        }
        res.on('error', reject);
      });
      req.on('error', reject);
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path} timed out after ${timeoutMs} ms`)));
      req.end(body);
    });
  return { request, close: () => agent.destroy() };
}

/** Headers and body of a JSON POST, built once and sent many times. */
function jsonPost(value, headers = {}) {
  const body = Buffer.from(JSON.stringify(value));
  return { body, headers: { 'content-type': 'application/json', 'content-length': String(body.length), ...headers } };
}

module.exports = { closedLoop, httpClient, jsonPost };
