// How full Redis is, for admission. At maxmemory Redis refuses every write that may grow its
// memory, the workers' too: they could neither take queued jobs nor record their end, so a full
// Redis could not drain. The API stops taking new jobs at a share of maxmemory
// (API_REDIS_MEMORY_LIMIT), which leaves the rest to the jobs already queued.
//
// Far from the limit, submissions do not wait on this: they are judged by the last reading, which
// one of them starts to refresh in the background when it is older than REFRESH_MS (an idle API
// reads nothing). Within NEAR_LIMIT of it, each waits for a reading taken after it arrived, so that
// the writes of the submissions before it are counted: a client sending one bulk after another
// otherwise got two more in past the limit. What was sent since the last reading counts too (its
// request bytes, times FOOTPRINT): bulks of large jobs sent one after another within one
// REFRESH_MS could otherwise carry Redis from under NEAR_LIMIT to maxmemory unseen. What slips
// past all the same (submissions in flight together) and meets Redis's own refusal is answered
// redis_full too. On a cluster each primary is
// read, and a lane is judged by the primary that holds its keys.
//
// No submission is judged without a reading: start() takes the first before the API listens, and
// until one has been taken each submission waits for one, as near the limit. Each reading also
// records the servers' maxmemory-policy (eviction-policy.ts): an evicting one is logged, and named
// in the API's redis_full refusals and /readyz.
import {
  lanePrefix,
  memoryRatio,
  readMemory,
  serverAddress,
  serverAddressOfKey,
  serversOf,
  type EvictionPolicyWatch,
  type RedisClient,
} from '@bullpen/core';
import { RedisGuard } from './redis-guard';

/** How old a reading may get before a submission starts a new one in the background. */
export const REFRESH_MS = 250;
/** How far under the limit (a share of maxmemory) each submission waits for a fresh reading. */
export const NEAR_LIMIT = 0.1;
/**
 * Redis memory counted per request byte sent since the last reading: a job's data is stored as the
 * JSON it arrived as, beside its options and BullMQ's fields, so twice its bytes errs on the side
 * of reading again.
 */
export const FOOTPRINT = 2;

export interface MemoryPastLimit {
  /** used_memory / maxmemory of the server holding the lane. */
  ratio: number;
  /** The limit it is past (API_REDIS_MEMORY_LIMIT). */
  limit: number;
  /** The server's maxmemory-policy when it is one that evicts keys, which bullpen must not run on. */
  evictingPolicy?: string;
}

export class RedisMemoryWatch {
  /** used / max by server address; absent when the server has no limit or was not read. */
  private ratios = new Map<string, number>();
  /** The highest of `ratios`. */
  private highest = 0;
  /** The least room left before NEAR_LIMIT on any server with a limit, in bytes, at the last reading. */
  private roomBytes = Number.POSITIVE_INFINITY;
  /** Memory the submissions sent since the last reading started may have taken (bytes × FOOTPRINT). */
  private sentBytes = 0;
  /** When the last reading was taken, on the monotonic clock: with the wall clock, a step back
   * stopped the readings for as long as the step, and submissions were judged on a stale one. */
  private readAtMs = Number.NEGATIVE_INFINITY;
  private reading: Promise<void> | undefined;
  /** Its own bound on its reads, which are no request's calls. */
  private readonly guard: RedisGuard;

  private readonly onReady = () => this.refresh();

  /**
   * @param limit share of maxmemory past which lanes are refused; 1 turns the check off
   * @param policies where each reading's maxmemory-policy goes (logged when it evicts)
   */
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    readonly limit: number,
    readonly policies: EvictionPolicyWatch,
  ) {
    this.guard = new RedisGuard(redis);
  }

  /**
   * Takes the first reading (resolves once it is taken or has failed), and another each time the
   * connection is ready again, as a Redis restarted may come back with another configuration.
   */
  async start(): Promise<void> {
    this.redis.on('ready', this.onReady);
    await this.fresh();
  }

  /** The evicting maxmemory-policy of the server holding `lane`'s keys, as last read; undefined if it does not evict. */
  evictingPolicyOf(lane: string): string | undefined {
    const address = serverAddressOfKey(this.redis, lanePrefix(this.prefix, lane));
    return address === undefined ? undefined : this.policies.evictingPolicy(address);
  }

  /** Stops reading on reconnects and waits for a reading in flight. */
  async close(): Promise<void> {
    this.redis.off('ready', this.onReady);
    await this.reading;
  }

  /**
   * Whether a submission of `bytes` waits for a fresh reading (fresh()): the last one was close
   * enough to the limit, or what was sent since it, this submission included, may have used the
   * room that was left.
   */
  near(bytes = 0): boolean {
    if (this.limit >= 1) return false;
    // No reading yet (the first failed, or a submission came before it): wait for one.
    if (this.readAtMs === Number.NEGATIVE_INFINITY) return true;
    return this.highest >= this.limit - NEAR_LIMIT || this.sentBytes + bytes * FOOTPRINT >= this.roomBytes;
  }

  /** Counts a submission of `bytes` that is about to be sent, until a reading started after it. */
  sent(bytes: number): void {
    if (this.limit < 1) this.sentBytes += bytes * FOOTPRINT;
  }

  /**
   * Resolves once a reading has been taken that started no earlier than this call (or failed); with
   * none taken yet, once the first is.
   */
  async fresh(): Promise<void> {
    // A reading in flight may have been sent before the writes this caller must see: wait it out.
    // Unless there is no reading yet: then the first one, on its way, will do.
    if (this.reading && this.readAtMs !== Number.NEGATIVE_INFINITY) await this.reading;
    this.refresh();
    await this.reading;
  }

  /** Whether new jobs for `lane` must be refused, and why, by the last reading; undefined when they may go in. */
  check(lane: string): MemoryPastLimit | undefined {
    if (this.limit >= 1) return undefined;
    if (performance.now() - this.readAtMs >= REFRESH_MS) this.refresh();
    // The usual case, no server past the limit (or none with one): no need to find the lane's.
    if (this.highest < this.limit) return undefined;
    const address = serverAddressOfKey(this.redis, lanePrefix(this.prefix, lane));
    const ratio = address === undefined ? undefined : this.ratios.get(address);
    if (ratio === undefined || ratio < this.limit) return undefined;
    const evictingPolicy = this.policies.evictingPolicy(address!);
    return evictingPolicy === undefined ? { ratio, limit: this.limit } : { ratio, limit: this.limit, evictingPolicy };
  }

  /** One reading of every primary at a time; a failed one keeps the last (the guard answers outages). */
  private refresh(): void {
    this.reading ??= this.read().finally(() => {
      this.reading = undefined;
    });
  }

  private async read(): Promise<void> {
    // What was sent before this reading started is in it; what is sent meanwhile may not be.
    const sentBefore = this.sentBytes;
    try {
      const servers = serversOf(this.redis);
      const memories = await this.guard.run(() => Promise.all(servers.map((server) => readMemory(server))));
      const ratios = new Map<string, number>();
      let roomBytes = Number.POSITIVE_INFINITY;
      servers.forEach((server, i) => {
        const memory = memories[i]!;
        this.policies.observe(serverAddress(server), memory.policy);
        const ratio = memoryRatio(memory);
        if (ratio === undefined) return;
        ratios.set(serverAddress(server), ratio);
        roomBytes = Math.min(roomBytes, (this.limit - NEAR_LIMIT) * memory.maxBytes - memory.usedBytes);
      });
      this.ratios = ratios;
      this.highest = Math.max(0, ...ratios.values());
      this.roomBytes = roomBytes;
      this.sentBytes = Math.max(0, this.sentBytes - sentBefore);
      this.readAtMs = performance.now();
    } catch {
      // Redis down or slow: the submission's own calls meet the outage and answer it.
    }
  }
}
