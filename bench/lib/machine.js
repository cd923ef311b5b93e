// The machine a run measured on, recorded with its results: on a small shared VM the numbers mean
// little without it.
'use strict';
const os = require('node:os');
const { redisVersion } = require('./redis');
const { round } = require('./stats');

async function machineInfo(redis) {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    model: cpus[0]?.model.trim() ?? 'unknown',
    memGiB: round(os.totalmem() / 2 ** 30, 1),
    node: process.version,
    redisVersion: await redisVersion(redis),
    platform: `${os.platform()} ${os.release()}`,
    loadAverageAtStart: os.loadavg().map((v) => round(v, 2)),
  };
}

module.exports = { machineInfo };
