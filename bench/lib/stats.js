// Latency summaries: nearest-rank quantiles over a sample of milliseconds.
'use strict';

function quantile(sorted, q) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/** { count, mean, p50, p95, p99, max } of a list of milliseconds, rounded to 0.001 ms. */
function summarize(samples) {
  const sorted = Float64Array.from(samples).sort();
  const round = (v) => Math.round(v * 1000) / 1000;
  const mean = sorted.reduce((a, b) => a + b, 0) / (sorted.length || 1);
  return {
    count: sorted.length,
    meanMs: round(mean),
    p50Ms: round(quantile(sorted, 0.5)),
    p95Ms: round(quantile(sorted, 0.95)),
    p99Ms: round(quantile(sorted, 0.99)),
    maxMs: round(sorted[sorted.length - 1] ?? NaN),
  };
}

/** Rounds a rate or ratio for the report. */
function round(value, digits = 0) {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

module.exports = { quantile, summarize, round };
