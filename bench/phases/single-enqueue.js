// §2 Single-job enqueue at 50 requests in flight for a fixed time: bullpen's
// POST /v1/lanes/:lane/jobs against two floors measured the same way — a bare Express 5 endpoint
// that parses JSON and answers 201 without Redis (the HTTP floor), and bare queue.add.
//
// The floor's app is served as the API serves its own (bench/floor-server.js), so the ratio is what
// bullpen adds to Express. Two more run once, for reference: the same app served by
// http.createServer(app), as `app.listen` serves it (on Node 20 Express costs about four times as
// much that way), and the floor adding each job with queue.add before it answers (Express and
// BullMQ's enqueue with nothing of bullpen's between them).
//
// The HTTP floor and bullpen run in `rounds` pairs, the side going first alternating, as in the
// worker section: one pair alone let outside load on a shared machine decide the ratio (0.51 and
// 0.74 for the same code in two runs). The ratio reported is the median of the pairs' ratios;
// `httpFloor` and `bullpen` are the pair with the median ratio. queue.add, a reference, runs once.
'use strict';
const path = require('node:path');
const { Queue } = require('bullmq');
const { BullpenStack, LANE } = require('../lib/bullpen');
const { cpuSeconds } = require('../lib/children');
const { closedLoop, httpClient, jsonPost } = require('../lib/load');
const { pairedRounds } = require('../lib/paired-rounds');
const { connectionOptions, deletePrefix, quiet } = require('../lib/redis');

const FLOOR = path.join(__dirname, '..', 'floor-server.js');
const JOB = { name: 'noop', data: {} };

function loadOptions(ctx) {
  return { inFlight: ctx.config.inFlight, durationMs: ctx.config.seconds * 1000, warmupMs: ctx.config.warmupSeconds * 1000 };
}

/** POSTs `request` to path at 50 in flight; a success is a 201. `pid` is the server's, for its CPU per request. */
async function httpLoad(ctx, url, urlPath, request, pid) {
  const client = httpClient(url, { maxSockets: ctx.config.inFlight });
  try {
    return await closedLoop({
      ...loadOptions(ctx),
      cpuOf: () => cpuSeconds(pid),
      op: () => client.request('POST', urlPath, { ...request, discard: true }).then((res) => res.status === 201),
    });
  } finally {
    client.close();
  }
}

/**
 * `server`: 'api' (served as the API serves its app) or 'node-default' (http.createServer(app));
 * `enqueue`: each request adds a job with queue.add under a prefix of its own.
 */
async function httpFloor(ctx, request, { server = 'api', enqueue = false } = {}) {
  const prefix = enqueue ? ctx.prefix('floor-add') : undefined;
  const name = `${server}${enqueue ? '-queue-add' : ''}`;
  const profile = ctx.profileDir
    ? ['--cpu-prof', `--cpu-prof-dir=${ctx.profileDir}`, `--cpu-prof-name=single-floor-${name}-${Date.now()}.cpuprofile`]
    : [];
  const child = ctx.children.spawn(`http floor (${name})`, process.execPath, [...profile, FLOOR], {
    env: { PATH: process.env.PATH, PORT: '0', FLOOR_SERVER: server, ...(enqueue ? { FLOOR_QUEUE_REDIS_URL: ctx.redisUrl, FLOOR_QUEUE_PREFIX: prefix } : {}) },
  });
  try {
    const [, port] = await child.waitForLine(/^listening (\d+)/, 'the HTTP floor to listen', 15_000);
    return await httpLoad(ctx, `http://127.0.0.1:${port}`, '/jobs', request, child.pid);
  } finally {
    await child.stop();
    if (prefix) await deletePrefix(ctx.redis, prefix);
  }
}

async function bareQueueAdd(ctx) {
  const prefix = ctx.prefix('add');
  const queue = quiet(new Queue(LANE, { connection: connectionOptions(ctx.redisUrl), prefix }));
  try {
    await queue.waitUntilReady();
    return await closedLoop({ ...loadOptions(ctx), op: () => queue.add(JOB.name, JOB.data).then(() => true) });
  } finally {
    await queue.close();
    await deletePrefix(ctx.redis, prefix);
  }
}

async function bullpenRest(ctx) {
  const prefix = ctx.prefix('single');
  const stack = BullpenStack.forRun(ctx, {
    prefix,
    label: 'single',
    ...(ctx.profileDir ? { profileDir: ctx.profileDir } : {}),
  });
  try {
    const { url, child } = await stack.startApi();
    return await httpLoad(ctx, url, `/v1/lanes/${LANE}/jobs`, jsonPost(JOB, stack.authHeader()), child.pid);
  } finally {
    await stack.stop();
    await deletePrefix(ctx.redis, prefix);
  }
}

async function run(ctx) {
  const { seconds, inFlight, rounds } = ctx.config;
  // The same bytes to every target; the floor ignores the Authorization header.
  const request = jsonPost(JOB, { authorization: `Bearer ${ctx.apiKey}` });
  const { pairs, medianRatio: ratio, middle } = await pairedRounds(rounds, {
    runBase: (i) => (ctx.log(`single enqueue: round ${i}/${rounds}, HTTP floor (bare Express 5, served as the API is), ${inFlight} in flight for ${seconds} s`), httpFloor(ctx, request)),
    runBullpen: (i) => (ctx.log(`single enqueue: round ${i}/${rounds}, bullpen REST, ${inFlight} in flight for ${seconds} s`), bullpenRest(ctx)),
    ratio: (floor, bullpen) => bullpen.perSecond / floor.perSecond,
  });
  ctx.log(`single enqueue: bare Express 5 served by http.createServer(app), ${inFlight} in flight for ${seconds} s`);
  const nodeDefault = await httpFloor(ctx, request, { server: 'node-default' });
  ctx.log(`single enqueue: bare Express 5 with queue.add, ${inFlight} in flight for ${seconds} s`);
  const expressQueueAdd = await httpFloor(ctx, request, { enqueue: true });
  ctx.log(`single enqueue: bare queue.add, ${inFlight} in flight for ${seconds} s`);
  const queueAdd = await bareQueueAdd(ctx);
  return {
    inFlight,
    seconds,
    warmupSeconds: ctx.config.warmupSeconds,
    rounds,
    ratioToFloor: ratio,
    byRound: pairs.map((p) => ({
      perSecond: { floor: p.base.perSecond, bullpen: p.bullpen.perSecond },
      ratio: p.ratio,
      serverCpuMsPerOp: { floor: p.base.serverCpuMsPerOp, bullpen: p.bullpen.serverCpuMsPerOp },
    })),
    httpFloor: middle.base,
    httpFloorNodeDefault: nodeDefault,
    expressQueueAdd,
    bareQueueAdd: queueAdd,
    bullpen: middle.bullpen,
  };
}

module.exports = { run };
