// What a measured stretch cost Redis, per job: its CPU (when the bench started the redis-server,
// from /proc) and its commands (INFO commandstats; on a shared REDIS_URL other clients count too).
'use strict';
const { cpuSeconds } = require('./children');
const { round } = require('./stats');

/** Redis's per-command counters: { cmd: { calls, usec } }. */
async function commandStats(redis) {
  const stats = {};
  for (const m of (await redis.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    stats[m[1]] = { calls: Number(m[2]), usec: Number(m[3]) };
  }
  return stats;
}

/** Commands per job between two readings, the costliest first (top 12). */
function commandsPerJob(before, after, n) {
  return Object.fromEntries(
    Object.entries(after)
      .map(([cmd, a]) => [cmd, { calls: a.calls - (before[cmd]?.calls ?? 0), usec: a.usec - (before[cmd]?.usec ?? 0) }])
      .filter(([, d]) => d.calls > 0)
      .sort((x, y) => y[1].usec - x[1].usec)
      .slice(0, 12)
      .map(([cmd, d]) => [cmd, { callsPerJob: round(d.calls / n, 3), usecPerJob: round(d.usec / n, 2) }]),
  );
}

/** Starts a reading; the returned function ends it and gives the cost per job of n jobs. */
async function startRedisCost({ redis, redisPid }) {
  const stats0 = await commandStats(redis);
  const cpu0 = redisPid ? cpuSeconds(redisPid) : undefined;
  return async (n) => {
    const cpu = cpu0 === undefined ? undefined : cpuSeconds(redisPid) - cpu0;
    const stats1 = await commandStats(redis);
    return {
      ...(cpu === undefined ? {} : { redisCpuMsPerJob: round((cpu * 1000) / n, 4) }),
      redisCommandsPerJob: commandsPerJob(stats0, stats1, n),
    };
  };
}

module.exports = { startRedisCost };
