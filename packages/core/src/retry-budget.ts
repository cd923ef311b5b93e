// The per-lane retry budget (Finagle/Envoy style), kept in Redis so every worker replica shares
// it. First attempts are deposited in batches (one pipelined call per flush, not per job); each
// retry asks the budget through one script call.
import type { RedisClient } from './redis';
import { retryBudgetBucketKey } from './keys';
import type { RetryBudgetPolicy } from './lanes';
import { scriptCommand } from './lua';
import { inMillionths } from './retry-allowance';

export interface RetryBudgetDecision {
  granted: boolean;
  retriesInWindow: number;
  allowedInWindow: number;
}

type BudgetRedis = RedisClient & {
  bullpenRetryBudget(numKeys: number, ...args: (string | number)[]): Promise<[number, number, number]>;
};

export interface RetryBudgetOptions {
  /** How often deposited first attempts are flushed to Redis; default 250 ms. */
  flushIntervalMs?: number;
  /** Clock, for tests; default Date.now. */
  now?: () => number;
}

export class RetryBudget {
  private pendingFirsts = 0;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private readonly now: () => number;
  private readonly flushIntervalMs: number;

  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
    private readonly lane: string,
    private readonly policy: RetryBudgetPolicy,
    options: RetryBudgetOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.flushIntervalMs = options.flushIntervalMs ?? 250;
    scriptCommand<BudgetRedis>(redis, 'bullpenRetryBudget', 'retry-budget');
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.flush(), this.flushIntervalMs);
    this.timer.unref();
  }

  /** Counts one first attempt; flushed to Redis on the next tick of the flush timer. */
  recordFirstAttempt(): void {
    this.pendingFirsts += 1;
  }

  /** Writes pending first attempts into the current bucket. */
  flush(): Promise<void> {
    const n = this.pendingFirsts;
    if (n === 0) return this.flushing;
    this.pendingFirsts = 0;
    const key = retryBudgetBucketKey(this.prefix, this.lane, Math.floor(this.now() / 1000));
    this.flushing = this.redis
      .multi()
      .hincrby(key, 'f', n)
      .expire(key, this.policy.windowSeconds + 2)
      .exec()
      .then(
        () => undefined,
        () => {
          // Redis away: keep the deposit for the next flush rather than lose it.
          this.pendingFirsts += n;
        },
      );
    return this.flushing;
  }

  /** Asks for one retry; deposits pending first attempts first so they count. */
  async tryRetry(): Promise<RetryBudgetDecision> {
    await this.flush();
    const second = Math.floor(this.now() / 1000);
    const keys: string[] = [];
    for (let s = second - this.policy.windowSeconds + 1; s <= second; s += 1) {
      keys.push(retryBudgetBucketKey(this.prefix, this.lane, s));
    }
    const minInWindow = this.policy.minRetriesPerSecond * this.policy.windowSeconds;
    const [granted, retries, allowed] = await (this.redis as unknown as BudgetRedis).bullpenRetryBudget(
      keys.length,
      ...keys,
      inMillionths(this.policy.ratio),
      inMillionths(minInWindow),
      this.policy.windowSeconds + 2,
    );
    return { granted: granted === 1, retriesInWindow: retries, allowedInWindow: allowed };
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}
