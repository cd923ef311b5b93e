// Leadership among the exporters of one prefix. Every exporter's totals come from the same state
// in Redis, so two serving at once would each export the whole of every count and a sum() over
// them would double it. One exporter holds a lease in Redis (exporter-lease.lua) and reads and
// serves; any other stands by and takes the lease once it is released or has expired.
import {
  exporterLeaderKey,
  isOutOfMemoryReply,
  scriptCommand,
  whenReady,
  type Logger,
  type RedisConnectionWatch,
  type RedisClient,
} from '@bullpen/core';

type LeaseClient = RedisClient & {
  exporterLease(key: string, id: string, mode: 'hold' | 'release', leaseMs: number): Promise<number>;
};

/** How often a standby asks for the lease, at most. */
const STANDBY_POLL_MS = 1000;

export interface LeaderLeaseOptions {
  /** A fail-fast connection (createRedis role 'producer'): a lease call must not queue while Redis is away. */
  redis: RedisClient;
  prefix: string;
  /** This exporter's id. An exporter restarted in place (same host name, same pid: a container's
   * main process) takes back its own lease at once instead of waiting for it to expire. */
  id: string;
  leaseMs: number;
  logger: Logger;
  /** Says why Redis is out of reach, or what it refused. */
  access?: RedisConnectionWatch;
  /** This exporter now holds the lease. */
  onElected(): void;
  /** Another exporter holds the lease this one held (it was paused past the lease, or Redis lost it). */
  onLost(): void;
}

export class LeaderLease {
  private readonly redis: LeaseClient;
  private readonly key: string;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private stopped = false;
  private held = false;
  private unreachableLogged = false;
  private standbyLogged = false;
  /** What Redis refused the last lease call, explained; cleared by the next that succeeds. */
  private refused: string | undefined;

  constructor(private readonly options: LeaderLeaseOptions) {
    this.redis = scriptCommand<LeaseClient>(options.redis, 'exporterLease', 'exporter-lease', 1);
    this.key = exporterLeaderKey(options.prefix);
  }

  get leading(): boolean {
    return this.held;
  }

  /** Why Redis refuses this exporter the lease (explainAccessRefusal), until a lease call succeeds again. */
  get refusal(): string | undefined {
    return this.refused;
  }

  /** Tries for the lease now, then renews it every third of its duration, or tries again. */
  start(): void {
    this.ticking = this.tick();
  }

  /** Stops renewing and releases the lease if held, so that a standby takes over at its next try. */
  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.ticking;
    if (!this.held) return;
    this.held = false;
    await this.redis.exporterLease(this.key, this.options.id, 'release', this.options.leaseMs).catch(() => undefined);
  }

  private async tick(): Promise<void> {
    const { id, leaseMs, logger } = this.options;
    try {
      // The connection does not queue commands; just after start it may not be ready yet.
      await whenReady(this.redis, leaseMs / 3);
      const holds = (await this.redis.exporterLease(this.key, id, 'hold', leaseMs)) === 1;
      this.unreachableLogged = false;
      this.refused = undefined;
      if (this.stopped) {
        // Taken just as close() was called: close() releases what is held.
        this.held = holds;
        return;
      }
      if (holds && !this.held) {
        this.held = true;
        logger.info('this exporter holds the leadership lease: reading the lane streams', { id });
        this.options.onElected();
      } else if (!holds && this.held) {
        this.held = false;
        this.options.onLost();
      } else if (!holds && !this.standbyLogged) {
        this.standbyLogged = true;
        logger.info('another exporter holds the leadership lease: standing by', { id });
      }
    } catch (err) {
      const refused = this.options.access?.note(err);
      if (refused !== undefined) this.refused = refused;
      if (!this.unreachableLogged) {
        this.unreachableLogged = true;
        // A lease held already is extended without growing Redis; taking it is a write that a Redis
        // at maxmemory refuses, so an exporter started then serves nothing until memory is freed.
        const message = isOutOfMemoryReply(err)
          ? 'Redis is out of memory (maxmemory) and refused the leadership lease: no job metrics until memory is freed; trying again'
          : refused
            ? 'Redis refused access for the leadership lease: no job metrics until it is granted; trying again'
            : 'could not reach Redis for the leadership lease; trying again';
        logger.warn(message, { error: refused ?? this.options.access?.downReason ?? (err as Error).message });
      }
    }
    // A holder renews at a third of the lease; a standby asks every second at most, so that a
    // lease released by a leader that stopped cleanly is taken over at once.
    const nextMs = this.held ? leaseMs / 3 : Math.min(leaseMs / 3, STANDBY_POLL_MS);
    if (!this.stopped) this.timer = setTimeout(() => (this.ticking = this.tick()), nextMs);
  }
}
