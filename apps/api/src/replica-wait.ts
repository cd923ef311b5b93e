// Jobs on the replicas before the 201 (API_REDIS_WAIT_REPLICAS). Redis replicates asynchronously:
// a job the primary acknowledged and a failover promoted a replica before it had is lost, though
// the API said 201. With replicas to wait for, the API sends Redis's WAIT after a submission's
// writes and answers 201 only once that many replicas hold them; fewer in time is an outcome the
// API cannot vouch for (the jobs are on the primary and may or may not survive it), answered as
// redis_timeout with the jobs' ids.
import { lanePrefix, waitForReplicas, type BullpenConfig, type RedisClient } from '@bullpen/core';
import { RedisGuard, RedisOutcomeUnknownError } from './redis-guard';

/** Fewer replicas than configured acknowledged the writes in time. */
export class NotReplicatedError extends RedisOutcomeUnknownError {
  constructor(
    readonly acknowledged: number,
    readonly replicas: number,
    readonly timeoutMs: number,
  ) {
    super(`${acknowledged} of ${replicas} replicas confirmed the writes within ${timeoutMs} ms`);
  }
}

export class ReplicaWait {
  private readonly replicas: number;
  private readonly timeoutMs: number;
  /** WAIT's own bound, past its timeout: Redis answers it then with the count so far. */
  private readonly guard: RedisGuard;

  constructor(
    private readonly redis: RedisClient,
    private readonly config: BullpenConfig,
  ) {
    this.replicas = config.apiRedisWaitReplicas;
    this.timeoutMs = config.apiRedisWaitTimeoutMs;
    this.guard = new RedisGuard(redis, this.timeoutMs + config.apiRedisTimeoutMs);
  }

  /** Whether submissions wait for replicas at all. */
  get enabled(): boolean {
    return this.replicas > 0;
  }

  /**
   * Resolves once the configured replicas hold every write sent so far to the lane's server;
   * throws NotReplicatedError when fewer confirm in time. Any failure here is an outcome unknown:
   * the writes are on the primary already, so no answer may say that nothing was written.
   */
  async confirm(lane: string): Promise<void> {
    if (!this.enabled) return;
    let acknowledged: number;
    try {
      acknowledged = await this.guard.run(() => waitForReplicas(this.redis, lanePrefix(this.config.prefix, lane), this.replicas, this.timeoutMs));
    } catch (err) {
      if (err instanceof RedisOutcomeUnknownError) throw err;
      throw new RedisOutcomeUnknownError(`the replicas could not be asked: ${(err as Error)?.message ?? String(err)}`, { cause: err });
    }
    if (acknowledged < this.replicas) throw new NotReplicatedError(acknowledged, this.replicas, this.timeoutMs);
  }
}
