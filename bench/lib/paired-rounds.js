// Bare (or a floor) against bullpen in pairs of runs, the side going first alternating, so that a
// burst of outside load on a shared machine lands on both sides alike rather than deciding the
// ratio. Used by the worker-throughput and single-enqueue sections.
'use strict';
const { median, round } = require('./stats');

/**
 * Runs `rounds` pairs: `runBase(i)` and `runBullpen(i)` run one side of round i, and
 * `ratio(base, bullpen)` is the pair's ratio. Returns every pair with its ratio, the median of the
 * ratios, and the pair closest to it (with an even number of rounds the median falls between two
 * pairs: either is as representative).
 */
async function pairedRounds(rounds, { runBase, runBullpen, ratio }) {
  const pairs = [];
  for (let i = 1; i <= rounds; i += 1) {
    let base;
    let bullpen;
    if (i % 2 === 1) {
      base = await runBase(i);
      bullpen = await runBullpen(i);
    } else {
      bullpen = await runBullpen(i);
      base = await runBase(i);
    }
    pairs.push({ base, bullpen, ratio: round(ratio(base, bullpen), 3) });
  }
  const medianRatio = median(pairs.map((p) => p.ratio));
  const middle = pairs.reduce((best, p) => (Math.abs(p.ratio - medianRatio) < Math.abs(best.ratio - medianRatio) ? p : best));
  return { pairs, medianRatio, middle };
}

module.exports = { pairedRounds };
