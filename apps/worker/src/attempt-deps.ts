// What an attempt needs from its lane and its process: the lane worker hands it to the attempt
// runner, which hands it on to the start and the failure of an attempt (attempt-start.ts,
// attempt-failure.ts).
import type { BullpenConfig, BullpenLaneEvent, LanePolicy, Logger, RedisClient, RetryBudgetDecision } from '@bullpen/core';
import type { Job } from 'bullmq';
import type { WorkerEventMap } from './events';
import type { ThreadPool } from './isolation/thread-pool';
import type { RandomSource } from './random';
import type { LaneSlots } from './handler-slots';
import type { HandlerRegistry } from './registry';

export type AnyJob = Job<unknown, unknown, string>;

export interface AttemptDeps {
  config: BullpenConfig;
  lane: string;
  policy: LanePolicy;
  registry: HandlerRegistry;
  /** The lane's share of the process-wide handler cap. */
  slots: LaneSlots;
  logger: Logger;
  random: RandomSource;
  /** A non-blocking connection for bullpen's own writes (attempt rows, events, budget). */
  redis: RedisClient;
  /** The lane's connection, on which BullMQ moves its jobs; undefined until the lane has started. */
  jobConnection(): RedisClient | undefined;
  budget: { recordFirstAttempt(): void; tryRetry(): Promise<RetryBudgetDecision> };
  /** The lane's handler threads when it is isolated. */
  pool: ThreadPool | undefined;
  emit<K extends keyof WorkerEventMap>(event: K, payload: WorkerEventMap[K]): void;
  /** Whether anything listens to `event`: the per-job events' payloads are built only then. */
  listens(event: keyof WorkerEventMap): boolean;
  /** Counts an in-process handler abandoned for ignoring its signal; returns the process total. */
  abandon(stillRunning: Promise<unknown>): number;
  ignoredSignalTotal(): number;
  /** Whether leases must be handed back (memory guard over its limit, or shutting down). */
  intakeStopped(): boolean;
  /** A start began / ended: for the lease records. */
  onStart(jobId: string, attemptsStarted: number): void;
  onEnd(jobId: string): void;
  /** Adds a bullpen event to the lane stream without waiting for it (close() does). */
  publish(ev: BullpenLaneEvent): void;
}
