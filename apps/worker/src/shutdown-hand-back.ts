// What a shutdown does with the attempts still running when its grace period ends: their handlers'
// signals abort with a WorkerStoppingError, and their jobs go back to the wait list without using an
// attempt or counting a stall, each job once. A handler that stops has its job handed back at once;
// one that does not (an in-process handler cannot be killed) keeps running until the process exits,
// and its job is handed back as late as the lane's close allows, so that it overlaps the job's next
// run elsewhere for the least time. Isolated lanes stop their handlers by terminating their threads
// (isolation/thread-pool.ts) and hand their jobs back here too.
import { reconnectNow, whenReady, type RedisClient } from '@bullpen/core';
import { WaitingError } from 'bullmq';
import type { AttemptAbort } from './attempt-abort';
import type { AnyJob, AttemptDeps } from './attempt-deps';
import { handBack } from './attempt-start';
import type { AttemptRef } from './events';

/** The reason a shutdown aborts the signals of the handlers still running when its grace period ends. */
export class WorkerStoppingError extends Error {
  override readonly name = 'WorkerStoppingError';
  readonly code = 'worker_stopping';
}

/**
 * How long a hand-back waits for its connections when it finds them not ready. Redis may be back
 * while they wait out their reconnect delay (up to 2 s, @bullpen/core redis.ts), so they are made
 * to try at once; the wait is longer than that delay, so that the attempt ioredis schedules after
 * a failed one still counts. It is part of the shutdown's teardown, and well within its bound
 * (runtime.ts TEARDOWN_BOUND_MS, 5 s): the exit is no later for it.
 */
export const HAND_BACK_REDIS_WAIT_MS = 2500;

/** How the shutdown stopped the attempt whose job it hands back. */
type Stop = 'isolated' | 'stopped' | 'still_running';

interface RunningAttempt {
  job: AnyJob;
  token: string | undefined;
  ref: AttemptRef;
  abort: AttemptAbort;
}

const LOG_LINES: Record<Stop, string> = {
  isolated: 'shutdown stopped an isolated handler; its job goes back to the wait list',
  stopped: 'shutdown stopped a handler still running when the grace period ended; its job goes back to the wait list',
  still_running:
    'a handler ignored the signal the shutdown aborted; its job goes back to the wait list while the handler runs on until the worker exits',
};

export class ShutdownHandBacks {
  /** The lane's attempts that may still end by a hand-back, by job id. */
  private readonly running = new Map<string, RunningAttempt>();
  /** The jobs the shutdown hands back, by job id; kept, so that an attempt whose abandoned handler
   * ends later finds its job already handed back rather than handing it back again. */
  private readonly handing = new Map<string, Promise<Error>>();
  /** The wait for Redis of the hand-backs under way, while it lasts. */
  private reaching: Promise<boolean> | undefined;

  constructor(private readonly deps: AttemptDeps) {}

  /** An attempt began: until it ends, a shutdown that finds it running hands its job back. */
  track(attempt: RunningAttempt): void {
    this.running.set(attempt.ref.jobId, attempt);
  }

  /** The attempt ended, or its outcome is being recorded: the shutdown leaves its job alone. */
  untrack(jobId: string): void {
    this.running.delete(jobId);
  }

  /** The grace period ended: aborts the signal of every attempt running now. */
  stopAll(): void {
    for (const { abort } of this.running.values()) {
      abort.abort(new WorkerStoppingError('the worker is stopping: its shutdown grace period ended with this job still running'));
    }
  }

  /** Whether the attempt ends by a hand-back: the shutdown stopped it, or gave its job back already. */
  stopped(jobId: string, abort: AttemptAbort): boolean {
    return abort.reason instanceof WorkerStoppingError || this.handing.has(jobId);
  }

  /**
   * Hands the job back to the wait list, once, and returns the error that tells BullMQ it has moved.
   * When it cannot be moved (Redis out of reach: its connections not ready within
   * HAND_BACK_REDIS_WAIT_MS, though made to reconnect at once; or the lock lost), it stays active
   * and is reclaimed once its lock expires, a stall: BullMQ is told it moved all the same, so as
   * to record nothing.
   */
  handBack(job: AnyJob, token: string | undefined, ref: AttemptRef, how: Stop): Promise<Error> {
    const known = this.handing.get(ref.jobId);
    if (known) return known;
    const { logger } = this.deps;
    const handing = this.connectionsReady().then((ready) => {
      if (!ready) {
        // Its commands would wait for Redis to come back, and hold up the exit for nothing.
        logger.warn('Redis is out of reach: a job the shutdown stopped is left to be reclaimed once its lock expires', {
          job_id: ref.jobId,
          attempt: ref.attempt,
        });
        return new WaitingError();
      }
      // A handler that ignores its signal is worth a warning: it may overlap the job's next run.
      logger[how === 'still_running' ? 'warn' : 'info'](LOG_LINES[how], { job_id: ref.jobId, attempt: ref.attempt });
      return handBack(this.deps, job, token, 'shutdown').then((handedBack) => handedBack ?? new WaitingError());
    });
    this.handing.set(ref.jobId, handing);
    return handing;
  }

  /**
   * Whether the connections a hand-back writes on (bullpen's, and the lane's that BullMQ moves the
   * job on) are ready, or get ready within HAND_BACK_REDIS_WAIT_MS. Hand-backs at the same time
   * share one wait; one after it looks again.
   */
  private connectionsReady(): Promise<boolean> {
    const connections = [this.deps.redis, this.deps.jobConnection()].filter((c): c is RedisClient => c !== undefined);
    if (connections.every((c) => c.status === 'ready')) return Promise.resolve(true);
    this.reaching ??= this.reach(connections).finally(() => {
      this.reaching = undefined;
    });
    return this.reaching;
  }

  private async reach(connections: readonly RedisClient[]): Promise<boolean> {
    // Redis back while a connection waits out its reconnect delay reads as Redis out of reach.
    this.deps.logger.info('Redis is not ready as the shutdown hands jobs back: reconnecting now, and waiting for it', {
      wait_ms: HAND_BACK_REDIS_WAIT_MS,
    });
    for (const connection of connections) reconnectNow(connection);
    const ready = await Promise.allSettled(connections.map((c) => whenReady(c, HAND_BACK_REDIS_WAIT_MS)));
    return ready.every((r) => r.status === 'fulfilled');
  }

  /**
   * Hands back the jobs whose handlers still run (they ignored their aborted signal), and resolves
   * once every job the shutdown stopped is back in the wait list or left to be reclaimed. Called
   * last before the lane's connection closes: a handler still running here may overlap with the
   * job's next run from the moment its job is handed back until this process exits.
   */
  async settle(): Promise<void> {
    for (const { job, token, ref } of this.running.values()) void this.handBack(job, token, ref, 'still_running');
    await Promise.allSettled(this.handing.values());
  }
}
