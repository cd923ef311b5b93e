// /v1/lanes: each lane's policy and live counts; pausing and resuming a lane. A lane is shared by
// every tenant, and its counts are of every tenant's jobs: they tell one tenant how much the
// others submit, how much of it fails and how far behind they are, which the rest of the API
// (another tenant's job is "not found", dead letters are each tenant's own) never shows. So only
// an operator tenant (mayOperateLanes, decided when the request is authenticated), who runs the
// deployment for all of them, gets the counts.
import type { JobType } from 'bullmq';
import type { Response } from 'express';
import type { BullpenConfig } from '@bullpen/core';
import { laneAccess, laneOf, mayUseLane, principalOf } from '../auth';
import { ProblemError } from '../problem';
import type { LaneRegistry } from '../lane-registry';
import type { RedisGuard } from '../redis-guard';
import type { RouteTable } from '../route-table';
import { LANE_COUNT_TYPES, type LaneStatus } from '../views';

export interface LaneRoutesDeps {
  config: BullpenConfig;
  guard: RedisGuard;
  lanes: LaneRegistry;
}

export function laneRoutes(router: RouteTable, { config, guard, lanes }: LaneRoutesDeps): void {
  /** @param withCounts the lane-wide counts, for an operator tenant; null otherwise */
  async function laneStatus(name: string, withCounts: boolean): Promise<LaneStatus> {
    const queue = lanes.queue(name);
    // BullMQ's JobType omits 'paused', but getJobCounts counts that list like any other.
    const types = LANE_COUNT_TYPES as readonly string[] as JobType[];
    const [counts, paused] = await guard.run(() => Promise.all([withCounts ? queue.getJobCounts(...types) : undefined, queue.isPaused()]));
    const policy = config.lanes[name];
    if (!policy) throw new Error(`unknown lane ${name}`);
    return {
      name,
      paused,
      counts: counts ? (Object.fromEntries(LANE_COUNT_TYPES.map((type) => [type, counts[type] ?? 0])) as NonNullable<LaneStatus['counts']>) : null,
      policy,
    };
  }

  router.get('/lanes', async (_req, res: Response) => {
    const principal = principalOf(res);
    const visible = config.laneNames.filter((name) => mayUseLane(principal, name));
    const withCounts = principal.operator;
    res.status(200).json({ lanes: await Promise.all(visible.map((name) => laneStatus(name, withCounts))) });
  });

  /** Pausing stops a lane for every tenant: an operator's action (API_OPERATOR_TENANTS). */
  function assertOperator(res: Response, action: string): void {
    const { tenant, operator } = principalOf(res);
    if (operator) return;
    throw new ProblemError(
      'operator_only',
      `Tenant ${tenant} may not ${action} lanes: a lane is ${action}d for every tenant, so only the tenants API_OPERATOR_TENANTS names may`,
    );
  }

  router.post('/lanes/:lane/pause', laneAccess(config), async (_req, res: Response) => {
    assertOperator(res, 'pause');
    const { lane } = laneOf(res);
    const queue = lanes.queue(lane);
    await guard.run(() => queue.pause());
    res.status(200).json({ lane, paused: true });
  });

  router.post('/lanes/:lane/resume', laneAccess(config), async (_req, res: Response) => {
    assertOperator(res, 'resume');
    const { lane } = laneOf(res);
    const queue = lanes.queue(lane);
    await guard.run(() => queue.resume());
    res.status(200).json({ lane, paused: false });
  });
}
