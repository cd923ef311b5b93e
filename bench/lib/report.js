// From the sections' results to ratios, targets (reported, never asserted) and the printed table.
'use strict';
const { round } = require('./stats');

function ratio(a, b) {
  return typeof a === 'number' && typeof b === 'number' && b > 0 ? round(a / b, 3) : null;
}

function ratios(results) {
  const out = {};
  const wt = results.workerThroughput;
  if (wt?.bare && wt?.bullpen) {
    // The medians of paired rounds (phases/worker-throughput.js).
    out.workerThroughput = wt.drainRatio ?? ratio(wt.bullpen.drain.jobsPerSec, wt.bare.drain.jobsPerSec);
    out.restBulkEnqueue = wt.enqueueRatio ?? ratio(wt.bullpen.enqueue.jobsPerSec, wt.bare.enqueue.jobsPerSec);
  }
  const se = results.singleEnqueue;
  if (se?.bullpen) {
    // The median of paired rounds (phases/single-enqueue.js).
    out.singleRestEnqueueVsHttpFloor = se.ratioToFloor ?? ratio(se.bullpen.perSecond, se.httpFloor.perSecond);
    out.singleRestEnqueueVsQueueAdd = ratio(se.bullpen.perSecond, se.bareQueueAdd.perSecond);
    if (se.httpFloorNodeDefault) out.singleRestEnqueueVsNodeDefaultExpress = ratio(se.bullpen.perSecond, se.httpFloorNodeDefault.perSecond);
    if (se.expressQueueAdd) out.singleRestEnqueueVsExpressQueueAdd = ratio(se.bullpen.perSecond, se.expressQueueAdd.perSecond);
  }
  const pk = results.pickup;
  if (pk?.bullpen) {
    out.pickupP50 = ratio(pk.bullpen.pickup.p50Ms, pk.bare.pickup.p50Ms);
    out.pickupP99 = ratio(pk.bullpen.pickup.p99Ms, pk.bare.pickup.p99Ms);
  }
  const tr = results.tracing;
  if (tr?.on) {
    out.tracingThroughput = ratio(tr.on.drain.jobsPerSec, tr.off.drain.jobsPerSec);
    out.tracingOverhead = out.tracingThroughput === null ? null : round(1 - out.tracingThroughput, 3);
  }
  return out;
}

function target(description, value, met, extra = {}) {
  return { target: description, value, met: value === null || value === undefined ? null : met, ...extra };
}

function targets(results, r, config) {
  const out = {};
  if ('workerThroughput' in r) out.workerThroughput = target('bullpen/bare worker jobs/s >= 0.9', r.workerThroughput, r.workerThroughput >= 0.9);
  if ('restBulkEnqueue' in r) out.restBulkEnqueue = target('REST bulk / bare addBulk jobs/s >= 0.8', r.restBulkEnqueue, r.restBulkEnqueue >= 0.8);
  if ('singleRestEnqueueVsHttpFloor' in r) {
    out.singleRestEnqueue = target('single REST enqueue / HTTP floor req/s >= 0.8', r.singleRestEnqueueVsHttpFloor, r.singleRestEnqueueVsHttpFloor >= 0.8);
  }
  if ('pickupP99' in r) out.pickupP99 = target('bullpen/bare pickup p99 <= 1.5', r.pickupP99, r.pickupP99 <= 1.5);
  if ('tracingOverhead' in r) out.tracingOverhead = target('1 - traced/untraced worker jobs/s <= 0.10', r.tracingOverhead, r.tracingOverhead <= 0.1);
  const ex = results.exporter;
  if (ex?.eventsPerSec !== undefined) {
    const atScale = ex.metrics.waitingJobs >= 1_000_000;
    out.exporterEvents = target('exporter events/s >= 20000', ex.eventsPerSec, ex.eventsPerSec >= 20_000);
    out.exporterScrape = target('exporter /metrics p99 < 50 ms with 1,000,000 waiting', ex.metrics.p99Ms, ex.metrics.p99Ms < 50, {
      waitingJobs: ex.metrics.waitingJobs,
      ...(atScale ? {} : { note: `measured with ${ex.metrics.waitingJobs} waiting jobs (${config.smoke ? 'smoke' : '--exporter-waiting'}), not 1,000,000` }),
    });
  }
  return out;
}

const fmt = (v, digits = 0) =>
  typeof v === 'number' && Number.isFinite(v) ? v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '–';
const pct = (v) => (typeof v === 'number' && Number.isFinite(v) ? `${fmt(v * 100, 1)}%` : '–');
const met = (t) => (t === undefined || t.met === null ? '' : t.met ? 'met' : 'MISSED');

/** The short table printed at the end of a run. */
function table({ machine, config, results, ratios: r, targets: t }) {
  const rows = [['measure', 'bare / floor', 'bullpen', 'ratio', 'target']];
  const wt = results.workerThroughput;
  if (wt?.bullpen) {
    rows.push(['enqueue, jobs/s (batches of 1000)', `${fmt(wt.bare.enqueue.jobsPerSec)} addBulk`, `${fmt(wt.bullpen.enqueue.jobsPerSec)} REST bulk`, fmt(r.restBulkEnqueue, 2), `>=0.8 ${met(t.restBulkEnqueue)}`]);
    rows.push(['  producer CPU ms/job (bench process / API)', fmt(wt.bare.enqueue.producerCpuMsPerJob, 3), fmt(wt.bullpen.enqueue.apiCpuMsPerJob, 3), '', '']);
    rows.push(['worker, jobs/s (concurrency 50)', fmt(wt.bare.drain.jobsPerSec), fmt(wt.bullpen.drain.jobsPerSec), fmt(r.workerThroughput, 2), `>=0.9 ${met(t.workerThroughput)}`]);
    rows.push(['  worker CPU ms/job', fmt(wt.bare.drain.workerCpuMsPerJob, 3), fmt(wt.bullpen.drain.workerCpuMsPerJob, 3), '', '']);
    if (wt.bullpen.drain.redisCpuMsPerJob !== undefined) {
      rows.push(['  Redis CPU ms/job', fmt(wt.bare.drain.redisCpuMsPerJob, 3), fmt(wt.bullpen.drain.redisCpuMsPerJob, 3), '', '']);
    }
    rows.push(['  exporter CPU ms/job (running alongside)', '', fmt(wt.bullpen.drain.exporterCpuMsPerJob, 3), '', '']);
    if (wt.bullpen.drain.machineIdleShare !== undefined) {
      rows.push(['  machine CPU idle during the drain', pct(wt.bare.drain.machineIdleShare), pct(wt.bullpen.drain.machineIdleShare), '', '']);
    }
    if (wt.byRound?.length > 1) {
      rows.push([`  drain ratio by round (median of ${wt.byRound.length} above)`, '', '', wt.byRound.map((x) => fmt(x.drainRatio, 2)).join(' '), '']);
      rows.push(['  enqueue ratio by round', '', '', wt.byRound.map((x) => fmt(x.enqueueRatio, 2)).join(' '), '']);
    }
  }
  const se = results.singleEnqueue;
  if (se?.bullpen) {
    rows.push([`single enqueue, req/s (${se.inFlight} in flight)`, `${fmt(se.httpFloor.perSecond)} Express`, `${fmt(se.bullpen.perSecond)} REST`, fmt(r.singleRestEnqueueVsHttpFloor, 2), `>=0.8 ${met(t.singleRestEnqueue)}`]);
    rows.push(['  server CPU ms/request', fmt(se.httpFloor.serverCpuMsPerOp, 3), fmt(se.bullpen.serverCpuMsPerOp, 3), fmt(ratio(se.httpFloor.serverCpuMsPerOp, se.bullpen.serverCpuMsPerOp), 2), '']);
    rows.push(['  p50 / p99 ms', `${fmt(se.httpFloor.p50Ms, 1)} / ${fmt(se.httpFloor.p99Ms, 1)}`, `${fmt(se.bullpen.p50Ms, 1)} / ${fmt(se.bullpen.p99Ms, 1)}`, '', '']);
    if (se.byRound?.length > 1) {
      rows.push([`  ratio to the floor by round (median of ${se.byRound.length} above)`, '', '', se.byRound.map((x) => fmt(x.ratio, 2)).join(' '), '']);
    }
    if (se.httpFloorNodeDefault) {
      const d = se.httpFloorNodeDefault;
      rows.push(['  Express by http.createServer: req/s; CPU ms/req', `${fmt(d.perSecond)}; ${fmt(d.serverCpuMsPerOp, 3)}`, '', fmt(r.singleRestEnqueueVsNodeDefaultExpress, 2), '']);
    }
    if (se.expressQueueAdd) {
      const q = se.expressQueueAdd;
      rows.push(['  Express + queue.add: req/s; CPU ms/req', `${fmt(q.perSecond)}; ${fmt(q.serverCpuMsPerOp, 3)}`, '', fmt(r.singleRestEnqueueVsExpressQueueAdd, 2), '']);
    }
    rows.push(['  bare queue.add, req/s; p50 / p99 ms', `${fmt(se.bareQueueAdd.perSecond)}; ${fmt(se.bareQueueAdd.p50Ms, 1)} / ${fmt(se.bareQueueAdd.p99Ms, 1)}`, '', fmt(r.singleRestEnqueueVsQueueAdd, 2), '']);
  }
  const pk = results.pickup;
  if (pk?.bullpen) {
    const ms = (s) => `${fmt(s.meanMs, 2)} / ${fmt(s.p50Ms)} / ${fmt(s.p99Ms)}`;
    rows.push([`pickup mean / p50 / p99 ms (${pk.jobs} jobs)`, ms(pk.bare.pickup), ms(pk.bullpen.pickup), fmt(r.pickupP99, 2), `<=1.5 ${met(t.pickupP99)}`]);
    rows.push(['  send -> handler p50 / p99 ms', `${fmt(pk.bare.sendToStart.p50Ms, 2)} / ${fmt(pk.bare.sendToStart.p99Ms, 2)}`, `${fmt(pk.bullpen.sendToStart.p50Ms, 2)} / ${fmt(pk.bullpen.sendToStart.p99Ms, 2)}`, '', '']);
  }
  const tr = results.tracing;
  if (tr?.on) {
    rows.push(['worker jobs/s, tracing off / 100%', fmt(tr.off.drain.jobsPerSec), fmt(tr.on.drain.jobsPerSec), `overhead ${fmt(100 * r.tracingOverhead, 1)}%`, `<=10% ${met(t.tracingOverhead)}`]);
    const cpu = tr.workerCpuMsPerJob;
    rows.push(['  worker CPU ms/job, off / 100%', fmt(cpu.off, 3), fmt(cpu.on, 3), `${cpu.overhead >= 0 ? '+' : ''}${fmt(100 * cpu.overhead, 1)}%`, '']);
    rows.push(['  spans received (worker / all)', '', `${fmt(tr.spansReceived.byService['bullpen-worker'] ?? 0)} / ${fmt(tr.spansReceived.spans)}`, '', '']);
  }
  const ex = results.exporter;
  if (ex?.eventsPerSec !== undefined) {
    rows.push(['exporter events/s', '', `${fmt(ex.eventsPerSec)} (${ex.cpuPercentOfOneCore}% of a core)`, '', `>=20,000 ${met(t.exporterEvents)}`]);
    rows.push([`exporter /metrics p50 / p99 ms (${fmt(ex.metrics.waitingJobs)} waiting)`, '', `${fmt(ex.metrics.p50Ms, 1)} / ${fmt(ex.metrics.p99Ms, 1)}`, '', `<50 ms ${met(t.exporterScrape)}`]);
  }
  const notes = [];
  for (const [name, section] of Object.entries(results)) {
    if (section?.error) notes.push(`${name} FAILED: ${section.error.split('\n')[0]}`);
  }
  for (const [name, arm] of [['worker throughput', wt?.bullpen], ['tracing off', results.tracing?.off], ['tracing on', results.tracing?.on]]) {
    const e = arm?.enqueue;
    if (e?.unavailableAnswers) {
      notes.push(`${name}: the bulk route answered 503 ${e.unavailableAnswers} time(s) and ${e.landedDespite503} of those batches were enqueued anyway`);
    }
  }
  if (results.tracing?.workerSpansReceived === false) notes.push(`tracing: ${results.tracing.note}`);
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const lines = rows.map((row) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  '));
  const head =
    `bullpen bench: N=${fmt(config.n)}${config.smoke ? ' (smoke)' : ''}; ${machine.cpus} x ${machine.model}, ` +
    `${fmt(machine.memGiB, 1)} GiB, node ${machine.node}, Redis ${machine.redisVersion}`;
  return [head, lines[0], '-'.repeat(lines[0].length), ...lines.slice(1), ...notes.map((n) => `note: ${n}`)].join('\n');
}

module.exports = { ratios, targets, table };
