#!/usr/bin/env node
// The HTTP floor of the single-job enqueue measurement: a bare Express 5 endpoint that parses the
// JSON body and answers 201, touching no Redis — what Express itself costs per request. bullpen's
// POST /v1/lanes/:lane/jobs is compared with it. PORT picks the port (0 = any); it prints
// "listening <port>".
'use strict';
const express = require('express');

const app = express();
app.disable('x-powered-by');
let next = 0;
app.post('/jobs', express.json({ limit: '1mb' }), (req, res) => {
  next += 1;
  res.status(201).json({ id: String(next), name: req.body?.name ?? null });
});

const server = app.listen(Number(process.env.PORT ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
