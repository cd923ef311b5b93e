// Waiting on conditions with a deadline, never on fixed sleeps.
'use strict';

/** Polls `probe` until it returns a truthy value (resolved with it) or timeoutMs passes. */
async function until(probe, what, timeoutMs, intervalMs = 20) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

module.exports = { until };
