// Who is calling: a Bearer key from configuration binds the request to a tenant and, optionally,
// to a set of lanes. With AUTH_DISABLED every request is the tenant "default".
import type { RequestHandler, Response } from 'express';
import { DEFAULT_TENANT, mayOperateLanes, type BullpenConfig, type LanePolicy } from '@bullpen/core';
import type { ApiKeyTable, Principal } from './key-table';
import { ProblemError } from './problem';

export type { Principal } from './key-table';

const BEARER = /^Bearer[ \t]+([^\s]+)[ \t]*$/i;

function unauthorized(detail: string, challenge: string): ProblemError {
  return new ProblemError('unauthorized', detail, { headers: { 'WWW-Authenticate': challenge } });
}

/** Authenticates each request against the keys `keys` holds when it comes in. */
export function authenticate(config: BullpenConfig, keys: ApiKeyTable): RequestHandler {
  if (config.authDisabled) {
    const anonymous: Principal = { tenant: DEFAULT_TENANT, operator: mayOperateLanes(config, DEFAULT_TENANT) };
    return (_req, res, next) => {
      res.locals.principal = anonymous;
      next();
    };
  }
  return (req, res, next) => {
    const match = BEARER.exec(req.headers.authorization ?? '');
    const presented = match?.[1];
    if (!presented) {
      next(unauthorized('Send Authorization: Bearer <key>', 'Bearer realm="bullpen"'));
      return;
    }
    const principal = keys.current.principalOf(presented);
    if (!principal) {
      next(unauthorized('The API key is not valid', 'Bearer realm="bullpen", error="invalid_token"'));
      return;
    }
    res.locals.principal = principal;
    next();
  };
}

export function principalOf(res: Response): Principal {
  const principal = res.locals.principal as Principal | undefined;
  if (!principal) throw new Error('principalOf: authenticate() did not run for this route');
  return principal;
}

export function mayUseLane(principal: Principal, lane: string): boolean {
  return principal.lanes === undefined || principal.lanes.has(lane);
}

export interface LaneContext {
  readonly lane: string;
  readonly policy: LanePolicy;
}

/**
 * Resolves `:lane` for the routes under it: 404 for a lane that is not configured, 403 for one
 * the key may not use. Runs before any body is read.
 */
export function laneAccess(config: BullpenConfig): RequestHandler<{ lane: string }> {
  return (req, res, next) => {
    const lane = req.params.lane;
    const policy = Object.hasOwn(config.lanes, lane) ? config.lanes[lane] : undefined;
    if (!policy) {
      next(new ProblemError('lane_not_found', `No lane named ${JSON.stringify(lane)}`));
      return;
    }
    if (!mayUseLane(principalOf(res), lane)) {
      next(new ProblemError('lane_forbidden', `This API key may not use lane ${lane}`));
      return;
    }
    const context: LaneContext = { lane, policy };
    res.locals.lane = context;
    next();
  };
}

export function laneOf(res: Response): LaneContext {
  const context = res.locals.lane as LaneContext | undefined;
  if (!context) throw new Error('laneOf: laneAccess() did not run for this route');
  return context;
}
