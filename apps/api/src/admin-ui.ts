// bull-board, the queue UI BullMQ users know, at /admin/queues. It shows every lane of every
// tenant, so it sits behind its own credential (HTTP Basic, ADMIN_UI_USER/ADMIN_UI_PASSWORD),
// never an API key, and is not mounted at all unless a password is configured. It takes changes
// only from its own page (admin-ui-guard.ts).
import { createHash, timingSafeEqual } from 'node:crypto';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import type { Queue } from 'bullmq';
import type { Express, RequestHandler } from 'express';
import type { RedisClient } from '@bullpen/core';
import { createLaneQueue, type BullpenConfig } from '@bullpen/core';
import { adminUiGuard } from './admin-ui-guard';

export const ADMIN_UI_PATH = '/admin/queues';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

function basicAuth(user: string, password: string): RequestHandler {
  const expected = digest(`${user}:${password}`);
  return (req, res, next) => {
    const header = req.headers.authorization ?? '';
    const match = /^Basic ([A-Za-z0-9+/=]+)$/.exec(header);
    const given = match ? Buffer.from(match[1] ?? '', 'base64').toString('utf8') : '';
    if (match && timingSafeEqual(digest(given), expected)) return next();
    res.setHeader('WWW-Authenticate', 'Basic realm="bullpen admin", charset="UTF-8"');
    res.status(401).type('text/plain').send('authentication required');
  };
}

/** Mounts the UI when configured; returns the queues it opened so the app can close them. */
export function mountAdminUi(app: Express, config: BullpenConfig, redis: RedisClient): Queue[] {
  if (!config.adminUiPassword) return [];
  const queues = config.laneNames.map((lane) => createLaneQueue(config, lane, redis));
  for (const queue of queues) queue.on('error', () => undefined);
  const serverAdapter = new ExpressAdapter();
  serverAdapter.setBasePath(ADMIN_UI_PATH);
  createBullBoard({
    queues: queues.map((queue) => new BullMQAdapter(queue, { readOnlyMode: false })),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'bullpen' } },
  });
  const board = serverAdapter.getRouter() as Express;
  // bull-board's sub-app is an Express app of its own, with Express's X-Powered-By back on.
  board.disable('x-powered-by');
  // The guard goes first, so that a 401 is marked too, and a cross-site change is refused before
  // the browser is even asked for credentials.
  app.use(ADMIN_UI_PATH, adminUiGuard(), basicAuth(config.adminUiUser, config.adminUiPassword), board);
  return queues;
}
