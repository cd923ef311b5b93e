// Memory over a long run: samples the resident set of named processes (/proc) and Redis's
// used_memory against the jobs finished so far, and judges whether a series stayed flat once warm.
'use strict';
const { rssBytes } = require('./children');
const { median, round, slope } = require('./stats');

const MB = 2 ** 20;

class MemorySampler {
  /**
   * @param {object} o
   * @param {import('ioredis').Redis} o.redis           reads INFO memory
   * @param {Record<string, number>} o.pids             process name -> pid
   * @param {() => Promise<number>} o.progress          jobs finished so far (the x axis)
   * @param {number} o.intervalMs                       time between samples
   * @param {(err: Error) => void} [o.onError]          a sample that failed (the next one is still taken)
   */
  constructor(o) {
    this.o = o;
    /** @type {{ atMs: number, jobs: number, rssMb: Record<string, number|null>, redisUsedMb: number }[]} */
    this.samples = [];
    this.timer = undefined;
    this.running = undefined;
    this.t0 = undefined;
  }

  start() {
    this.t0 = Date.now();
    const tick = () => {
      this.running = this.sample()
        .catch((err) => this.o.onError?.(err))
        .finally(() => {
          if (this.timer !== null) this.timer = setTimeout(tick, this.o.intervalMs);
        });
    };
    tick();
  }

  /** Takes one sample now (also the last one, after the drain). */
  async sample() {
    const [jobs, info] = await Promise.all([this.o.progress(), this.o.redis.info('memory')]);
    const rssMb = {};
    for (const [name, pid] of Object.entries(this.o.pids)) {
      const bytes = rssBytes(pid);
      rssMb[name] = bytes === undefined ? null : round(bytes / MB, 1);
    }
    const used = Number(/^used_memory:(\d+)/m.exec(info)?.[1]);
    const s = { atMs: Date.now() - this.t0, jobs, rssMb, redisUsedMb: round(used / MB, 2) };
    this.samples.push(s);
    return s;
  }

  /** Stops sampling; resolves once a sample in progress has been recorded. */
  async stop() {
    clearTimeout(this.timer);
    this.timer = null;
    await this.running;
  }
}

/**
 * The trend of one series after warm-up. `pick(sample)` gives the value in MB (null: skip). Early
 * is the first quarter of the jobs after warm-up, late the last quarter; the slope is a least-
 * squares fit over every sample after warm-up, in MB per 100,000 jobs. Flat when neither the
 * growth from early to late medians nor the fitted rise over the post-warm-up span exceeds the
 * tolerance: max(toleranceMb, tolerancePct of the early median).
 * `judge: false` reports the numbers and leaves `flat` null (too few jobs to say).
 */
function trend(samples, pick, { warmupJobs, totalJobs, toleranceMb, tolerancePct, judge }) {
  const points = samples.map((s) => ({ jobs: s.jobs, mb: pick(s) })).filter((p) => typeof p.mb === 'number');
  const after = points.filter((p) => p.jobs >= warmupJobs);
  const span = Math.max(1, totalJobs - warmupJobs);
  const early = after.filter((p) => p.jobs <= warmupJobs + span / 4).map((p) => p.mb);
  const late = after.filter((p) => p.jobs >= totalJobs - span / 4).map((p) => p.mb);
  const earlyMedianMb = median(early);
  const lateMedianMb = median(late);
  const perJob = slope(after.map((p) => p.jobs), after.map((p) => p.mb));
  const toleranceUsedMb = Math.max(toleranceMb, (tolerancePct / 100) * (Number.isFinite(earlyMedianMb) ? earlyMedianMb : 0));
  const growthMb = lateMedianMb - earlyMedianMb;
  const fittedRiseMb = perJob * span;
  const enough = early.length >= 3 && late.length >= 3;
  const num = (v, d) => (Number.isFinite(v) ? round(v, d) : null);
  return {
    startMb: num(points[0]?.mb, 1),
    afterWarmupMedianMb: num(earlyMedianMb, 1),
    lastQuarterMedianMb: num(lateMedianMb, 1),
    endMb: num(points[points.length - 1]?.mb, 1),
    peakMb: num(Math.max(...points.map((p) => p.mb)), 1),
    growthMb: num(growthMb, 1),
    slopeMbPer100kJobs: num(perJob * 100_000, 2),
    fittedRiseMb: num(fittedRiseMb, 1),
    toleranceMb: num(toleranceUsedMb, 1),
    samples: { total: points.length, early: early.length, late: late.length },
    flat: !judge ? null : enough ? growthMb <= toleranceUsedMb && fittedRiseMb <= toleranceUsedMb : false,
    ...(judge && !enough ? { note: 'fewer than 3 samples in the first or last quarter after warm-up' } : {}),
  };
}

module.exports = { MemorySampler, trend };
