#!/usr/bin/env node
// The HTTP floor of the single-job enqueue measurement: a bare Express 5 endpoint that parses the
// JSON body and answers 201, touching no Redis — what Express itself costs per request. bullpen's
// POST /v1/lanes/:lane/jobs is compared with it. PORT picks the port (0 = any); it prints
// "listening <port>".
//
// It is served as the API serves its app (apps/api/src/server.ts: Node makes each request and
// response with the app's prototypes, so Express need not switch them), so that the two differ
// only in what bullpen adds to Express. FLOOR_SERVER=node-default serves it with
// http.createServer(app) instead, as `app.listen` does: on Node 20 that costs about four times the
// CPU a request, and the bench reports it for reference.
//
// With FLOOR_QUEUE_REDIS_URL (and FLOOR_QUEUE_PREFIX) the endpoint also adds the job with BullMQ's
// queue.add before it answers: Express and the enqueue with nothing of bullpen's between them.
'use strict';
const http = require('node:http');
const express = require('express');
const { createHttpServer } = require('../apps/api/dist/server');
const { connectionOptions, quiet } = require('./lib/redis');

const app = express();
app.disable('x-powered-by');
let next = 0;
const queue = process.env.FLOOR_QUEUE_REDIS_URL ? openQueue(process.env.FLOOR_QUEUE_REDIS_URL, process.env.FLOOR_QUEUE_PREFIX) : undefined;
app.post('/jobs', express.json({ limit: '1mb' }), async (req, res) => {
  if (queue) {
    const job = await queue.add(req.body?.name ?? 'noop', req.body?.data ?? {});
    res.status(201).json({ id: job.id, name: job.name });
    return;
  }
  next += 1;
  res.status(201).json({ id: String(next), name: req.body?.name ?? null });
});

/** A BullMQ Queue on a connection that fails fast, as the API's producer connection does. */
function openQueue(url, prefix) {
  const { Queue } = require('bullmq');
  const connection = { ...connectionOptions(url), maxRetriesPerRequest: 1, enableOfflineQueue: false };
  return quiet(new Queue('bench', { connection, prefix }));
}

async function main() {
  await queue?.waitUntilReady();
  const server = process.env.FLOOR_SERVER === 'node-default' ? http.createServer(app) : createHttpServer(app);
  server.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
    process.stdout.write(`listening ${server.address().port}\n`);
  });
  const stop = () => server.close(() => void Promise.resolve(queue?.close()).finally(() => process.exit(0)));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err) => {
  process.stderr.write(`floor: ${err?.stack ?? err}\n`);
  process.exit(1);
});
