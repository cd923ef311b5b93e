// §5 Exporter: runs apps/exporter/bench/bench-exporter.js against the bench's Redis and reads its
// numbers — events/s one exporter process counts, and /metrics latency with a long backlog.
'use strict';
const path = require('node:path');
const { ROOT } = require('../lib/bullpen');

const SCRIPT = path.join(ROOT, 'apps/exporter/bench/bench-exporter.js');
const THROUGHPUT =
  /throughput: (\d+) entries counted in ([\d.]+) s .*?= (\d+) events\/s; exporter CPU ([\d.]+) s \((\d+)% of one core\); completed (\d+), failed (\d+)/;
const SCRAPE = /\/metrics with (\d+) waiting jobs: p50 ([\d.]+) ms, p95 ([\d.]+) ms, p99 ([\d.]+) ms, max ([\d.]+) ms over (\d+) scrapes; Redis part of the last scrape ([\d.]+) ms/;

async function run(ctx) {
  const { exporterJobs: jobs, exporterWaiting: waiting } = ctx.config;
  ctx.log(`exporter: bench-exporter.js --jobs ${jobs} --waiting ${waiting}`);
  // Its own process group: on a timeout the exporters it started go too.
  const child = ctx.children.spawn('exporter bench', process.execPath, [SCRIPT, '--jobs', String(jobs), '--waiting', String(waiting)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, REDIS_URL: ctx.redisUrl },
    group: true,
  });
  const timer = setTimeout(() => child.signal('SIGKILL'), ctx.exporterTimeoutMs);
  const status = await child.exited;
  clearTimeout(timer);
  const output = child.tail.join('\n');
  if (status.code !== 0) throw new Error(`bench-exporter.js exited (${status.signal ?? status.code}):\n${output}`);
  const t = THROUGHPUT.exec(output);
  const s = SCRAPE.exec(output);
  if (!t || !s) throw new Error(`could not read bench-exporter.js's numbers from:\n${output}`);
  return {
    jobs,
    entries: Number(t[1]),
    eventsPerSec: Number(t[3]),
    cpuPercentOfOneCore: Number(t[5]),
    countedCompleted: Number(t[6]),
    countedFailed: Number(t[7]),
    metrics: {
      waitingJobs: Number(s[1]),
      p50Ms: Number(s[2]),
      p95Ms: Number(s[3]),
      p99Ms: Number(s[4]),
      maxMs: Number(s[5]),
      scrapes: Number(s[6]),
      redisPartMs: Number(s[7]),
    },
  };
}

module.exports = { run };
