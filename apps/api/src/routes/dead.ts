// /v1/lanes/:lane/dead: list a lane's dead letters, redrive them, purge them.
import type { Request, RequestHandler, Response } from 'express';
import type { BullpenConfig } from '@bullpen/core';
import { laneAccess, laneOf, principalOf } from '../auth';
import { jsonBody } from '../body';
import type { DeadLetters } from '../dead-letters';
import { ProblemError } from '../problem';
import type { RouteTable } from '../route-table';
import { deadLetterQuerySchema, deadLetterSelectionSchema, parseWith, type DeadLetterSelection } from '../schemas';

export interface DeadLetterRoutesDeps {
  config: BullpenConfig;
  deadLetters: DeadLetters;
}

type LaneRequest = Request<{ lane: string }>;

/**
 * No body at all (curl -X DELETE): no Content-Type, no chunked encoding, and no length or a length
 * of 0. A request that names a Content-Type announces a body: if it is empty, or `null`, the
 * client most likely lost what it meant to send, and a purge must not read that as "all".
 */
function hasNoBody(req: Request): boolean {
  const { 'content-length': length, 'content-type': type, 'transfer-encoding': encoding } = req.headers;
  return type === undefined && encoding === undefined && (length === undefined || length === '0');
}

/** The JSON body readers, skipped when the request has no body: DELETE without one means "all". */
function optionalJsonBody(limitBytes: number): RequestHandler[] {
  return jsonBody(limitBytes).map(
    (handler): RequestHandler =>
      (req, res, next) => {
        if (hasNoBody(req)) next();
        else void handler(req, res, next);
      },
  );
}

function selection(body: unknown): DeadLetterSelection {
  const parsed = parseWith(deadLetterSelectionSchema, body, 'body');
  if (!parsed.ok) throw new ProblemError('validation_failed', 'The selection is invalid', { errors: parsed.errors });
  return parsed.value;
}

export function deadLetterRoutes(router: RouteTable, { config, deadLetters }: DeadLetterRoutesDeps): void {
  const lane = laneAccess(config);

  router.get('/lanes/:lane/dead', lane, async (req: LaneRequest, res: Response) => {
    const parsed = parseWith(deadLetterQuerySchema, req.query, 'query');
    if (!parsed.ok) throw new ProblemError('validation_failed', 'The query is invalid', { errors: parsed.errors });
    res.status(200).json(await deadLetters.list(laneOf(res).lane, principalOf(res).tenant, parsed.value));
  });

  router.post('/lanes/:lane/dead/redrive', lane, ...jsonBody(config.bodyLimitBytes), async (req: LaneRequest, res: Response) => {
    const { ids, failedBefore } = selection(req.body);
    res.status(200).json(await deadLetters.redrive(laneOf(res).lane, principalOf(res).tenant, ids, failedBefore));
  });

  router.delete('/lanes/:lane/dead', lane, ...optionalJsonBody(config.bodyLimitBytes), async (req: LaneRequest, res: Response) => {
    // Only a request without any body means "all"; a body of null is refused like any non-object.
    const { ids, failedBefore } = selection(hasNoBody(req) ? {} : req.body);
    res.status(200).json(await deadLetters.purge(laneOf(res).lane, principalOf(res).tenant, ids, failedBefore));
  });
}
