// /v1/lanes: each lane's policy and live counts; pausing and resuming a lane.
import type { JobType } from 'bullmq';
import type { Response } from 'express';
import { mayOperateLanes, type BullpenConfig } from '@bullpen/core';
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
  async function laneStatus(name: string): Promise<LaneStatus> {
    const queue = lanes.queue(name);
    // BullMQ's JobType omits 'paused', but getJobCounts counts that list like any other.
    const types = LANE_COUNT_TYPES as readonly string[] as JobType[];
    const [counts, paused] = await guard.run(() => Promise.all([queue.getJobCounts(...types), queue.isPaused()]));
    const policy = config.lanes[name];
    if (!policy) throw new Error(`unknown lane ${name}`);
    return {
      name,
      paused,
      counts: Object.fromEntries(LANE_COUNT_TYPES.map((type) => [type, counts[type] ?? 0])) as LaneStatus['counts'],
      policy,
    };
  }

  router.get('/lanes', async (_req, res: Response) => {
    const principal = principalOf(res);
    const visible = config.laneNames.filter((name) => mayUseLane(principal, name));
    res.status(200).json({ lanes: await Promise.all(visible.map(laneStatus)) });
  });

  /** Pausing stops a lane for every tenant: an operator's action (API_OPERATOR_TENANTS). */
  function assertOperator(res: Response, action: string): void {
    const { tenant } = principalOf(res);
    if (mayOperateLanes(config, tenant)) return;
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
