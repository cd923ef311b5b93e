// The soak's verdicts — nothing lost, RSS flat after warm-up, Redis memory within what retention
// allows, every process still up — and the summary table printed at the end.
'use strict';
const { jobKeys, laneEventsKey, laneStateKeys } = require('@bullpen/core');
const { trend } = require('./memory-trend');
const { ASSUMED_BYTES } = require('./soak-workload');
const { round } = require('./stats');

const MB = 2 ** 20;
const JOB_SAMPLE = 20;

/** Redis's own account of what one retained job and one stream entry cost, sampled per lane. */
async function measuredSizes(redis, prefix, lanes) {
  const bytes = { completed: [], failed: [] };
  let streamBytes = 0;
  let streamEntries = 0;
  for (const lane of lanes) {
    const state = laneStateKeys(prefix, lane);
    for (const set of ['completed', 'failed']) {
      for (const id of await redis.zrange(state[set], 0, JOB_SAMPLE - 1)) {
        const keys = jobKeys(prefix, lane, id);
        const [job, logs] = await Promise.all([redis.memory('USAGE', keys.job), redis.memory('USAGE', keys.logs)]);
        bytes[set].push((job ?? 0) + (logs ?? 0));
      }
    }
    const events = laneEventsKey(prefix, lane);
    const length = await redis.xlen(events);
    if (length > 0) {
      streamBytes += (await redis.memory('USAGE', events, 'SAMPLES', '0')) ?? 0;
      streamEntries += length;
    }
  }
  const mean = (xs) => (xs.length ? round(xs.reduce((a, b) => a + b, 0) / xs.length) : null);
  const max = (xs) => (xs.length ? Math.max(...xs) : null);
  return {
    jobsSampled: bytes.completed.length,
    jobMeanBytes: mean(bytes.completed),
    jobMaxBytes: max(bytes.completed),
    deadLettersSampled: bytes.failed.length,
    deadLetterMeanBytes: mean(bytes.failed),
    deadLetterMaxBytes: max(bytes.failed),
    streamEntryBytes: streamEntries ? round(streamBytes / streamEntries) : null,
  };
}

function lossCheck({ sent, totals, unfinishedAtEnd }) {
  const finished = totals.completed + totals.dead;
  const met =
    totals.eventsLost === 0 &&
    unfinishedAtEnd === 0 &&
    totals.enqueued === sent.accepted &&
    finished === sent.accepted &&
    totals.completed === sent.expected.completed &&
    totals.dead === sent.expected.dead;
  return {
    met,
    accepted: sent.accepted,
    countedEnqueued: totals.enqueued,
    completed: totals.completed,
    expectedCompleted: sent.expected.completed,
    deadLettered: totals.dead,
    expectedDeadLettered: sent.expected.dead,
    missing: sent.accepted - finished,
    unfinishedAtEnd,
    exporterEventsLost: totals.eventsLost,
    ...(sent.dropped ? { droppedOnPurpose: sent.dropped } : {}),
  };
}

function checks({ config, sent, totals, samples, bound, keep, sizes, alive, unfinishedAtEnd, rssTolerance }) {
  const totalJobs = Math.max(1, totals.completed + totals.dead);
  const warmupJobs = Math.round((config.warmupPct / 100) * totalJobs);
  const judge = sent.accepted >= config.minJudgedJobs;
  const rss = {};
  for (const name of Object.keys(samples[0]?.rssMb ?? {})) {
    // The API is watched too, but the soak's claim is about the workers and the exporter.
    const judged = judge && name !== 'api';
    rss[name] = trend(samples, (s) => s.rssMb[name], { warmupJobs, totalJobs, ...rssTolerance, judge: judged });
  }
  const judgedRss = Object.entries(rss).filter(([name]) => name !== 'api');
  const rssFlat = {
    met: judge ? judgedRss.every(([, t]) => t.flat === true) : null,
    ...(judge ? {} : { note: `not judged: fewer than --min-judged-jobs ${config.minJudgedJobs} jobs` }),
  };

  const redisMb = samples.map((s) => s.redisUsedMb);
  const redis = {
    baselineMb: round(bound.baselineBytes / MB, 1),
    peakMb: round(Math.max(...redisMb), 1),
    finalMb: redisMb[redisMb.length - 1],
    boundMb: round(bound.bytes / MB, 1),
    bound,
    trend: trend(samples, (s) => s.redisUsedMb, { warmupJobs, totalJobs, toleranceMb: 0, tolerancePct: 0, judge: false }),
  };
  const overRetention = Object.entries(keep).filter(([, k]) => k.completed > k.completedLimit || k.failed > k.failedLimit).map(([lane]) => lane);
  const sizesWithin =
    (sizes.jobMaxBytes ?? 0) <= ASSUMED_BYTES.job &&
    (sizes.deadLetterMaxBytes ?? 0) <= ASSUMED_BYTES.deadLetter &&
    (sizes.streamEntryBytes ?? 0) <= ASSUMED_BYTES.streamEntry;
  const redisBounded = {
    met: redis.peakMb * MB <= bound.bytes && overRetention.length === 0 && sizesWithin,
    peakMb: redis.peakMb,
    boundMb: redis.boundMb,
    lanesOverRetention: overRetention,
    measuredSizesWithinAssumed: sizesWithin,
  };

  const down = Object.entries(alive).filter(([, up]) => !up).map(([name]) => name);
  const result = {
    checks: {
      noLoss: lossCheck({ sent, totals, unfinishedAtEnd }),
      rssFlat,
      redisBounded,
      processesUp: { met: down.length === 0, down },
    },
    rss,
    redis,
    warmupJobs,
  };
  result.passed = Object.values(result.checks).every((c) => c.met !== false);
  return result;
}

const fmt = (v, digits = 0) =>
  typeof v === 'number' && Number.isFinite(v) ? v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '–';
const verdict = (met) => (met === null ? 'not judged' : met ? 'ok' : 'FAILED');

function soakTable(r) {
  const { machine, config, checks: c } = r;
  const rows = [['process', 'start MB', 'after warm-up MB', 'last quarter MB', 'end MB', 'MB/100k jobs', 'growth MB', 'flat']];
  for (const [name, t] of Object.entries(r.rss)) {
    rows.push([name, fmt(t.startMb, 1), fmt(t.afterWarmupMedianMb, 1), fmt(t.lastQuarterMedianMb, 1), fmt(t.endMb, 1), fmt(t.slopeMbPer100kJobs, 2), fmt(t.growthMb, 1), t.flat === null ? '–' : t.flat ? 'yes' : 'NO']);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const lines = rows.map((row) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  '));
  const loss = c.noLoss;
  return [
    `bullpen soak: ${fmt(loss.accepted)} jobs accepted of ${fmt(config.jobs)} in ${fmt(r.processingSeconds / 60, 1)} min (${fmt(r.jobsPerSecond)} jobs/s; ${fmt(r.durationSeconds / 60, 1)} min with start-up); ` +
      `${config.workers} workers; ${machine.cpus} x ${machine.model}, node ${machine.node}, Redis ${machine.redisVersion}`,
    lines[0],
    '-'.repeat(lines[0].length),
    ...lines.slice(1),
    '',
    `Redis used_memory: baseline ${fmt(r.redis.baselineMb, 1)} MB, peak ${fmt(r.redis.peakMb, 1)} MB, final ${fmt(r.redis.finalMb, 1)} MB; ` +
      `bound from retention ${fmt(r.redis.boundMb, 1)} MB (${fmt(r.redis.bound.retainedJobs)} completed + ${fmt(r.redis.bound.backlogJobs)} backlog jobs, ` +
      `${fmt(r.redis.bound.retainedDeadLetters)} dead letters, ${fmt(r.redis.bound.streamEntries)} stream entries)`,
    `measured: ${fmt(r.measuredBytes.jobMeanBytes)} B per completed job (max ${fmt(r.measuredBytes.jobMaxBytes)}), ` +
      `${fmt(r.measuredBytes.deadLetterMeanBytes)} B per dead letter (max ${fmt(r.measuredBytes.deadLetterMaxBytes)}), ${fmt(r.measuredBytes.streamEntryBytes)} B per stream entry`,
    `jobs: completed ${fmt(loss.completed)} (expected ${fmt(loss.expectedCompleted)}), dead-lettered ${fmt(loss.deadLettered)} (expected ${fmt(loss.expectedDeadLettered)}), ` +
      `missing ${fmt(loss.missing)}, exporter events lost ${fmt(loss.exporterEventsLost)}`,
    ...(r.sent.unavailable.answers
      ? [`note: the bulk route answered 503 (Redis late) ${r.sent.unavailable.answers} time(s); ${r.sent.unavailable.landed} of those batches had been added, the rest were sent again`]
      : []),
    ...(r.sent.stoppedEarly ? [`note: stopped sending early: ${r.sent.stoppedEarly}`] : []),
    ...(r.tracing
      ? [
          `tracing at 100% sampling: ${fmt(r.tracing.spans)} spans received (` +
            Object.entries(r.tracing.byService).map(([service, n]) => `${service} ${fmt(n)}`).join(', ') +
            `) in ${fmt(r.tracing.requests)} exports of ${fmt(r.tracing.bytes / 1e6, 1)} MB${r.tracing.unparsed ? `; ${r.tracing.unparsed} unreadable` : ''}`,
        ]
      : []),
    '',
    `check nothing lost:           ${verdict(c.noLoss.met)}${loss.droppedOnPurpose ? ` (${loss.droppedOnPurpose} jobs dropped on purpose by --drop-jobs)` : ''}`,
    `check worker/exporter RSS flat: ${c.rssFlat.note ?? verdict(c.rssFlat.met)}`,
    `check Redis within retention: ${verdict(c.redisBounded.met)}`,
    `check every process up:       ${verdict(c.processesUp.met)}${c.processesUp.down.length ? ` (down: ${c.processesUp.down.join(', ')})` : ''}`,
    r.passed ? 'soak PASSED' : 'soak FAILED',
  ].join('\n');
}

module.exports = { checks, measuredSizes, soakTable };
