// Lane policies: the schema of the lanes file, its defaults, and the built-in default lanes.
import { z } from 'zod';
import { retryAllowance } from './retry-allowance';

/** Lane names become BullMQ queue names, Redis key parts and URL segments: keep them plain. */
export const LANE_NAME = /^[a-z][a-z0-9_-]{0,62}$/;
/** Job names are metric labels and handler registry keys. */
export const JOB_NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,127}$/;

export const BACKOFF_STRATEGIES = ['exponential', 'decorrelated', 'fixed', 'linear'] as const;
export type BackoffStrategyName = (typeof BACKOFF_STRATEGIES)[number];

const positiveInt = z.number().int().positive();

/**
 * The longest timer Node keeps (about 24.8 days): a longer setTimeout fires after 1 ms instead,
 * which would time every attempt out at once. Durations that become timers are bounded by it.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;
const nonNegativeInt = z.number().int().nonnegative();

export const backoffSchema = z
  .object({
    /** Strategy name; default exponential (capped full jitter). */
    strategy: z.enum(BACKOFF_STRATEGIES).default('exponential'),
    /** Base delay; default 1000 ms. */
    baseMs: nonNegativeInt.default(1000),
    /** Upper bound of any delay; default 60000 ms. Every strategy is capped. */
    capMs: positiveInt.default(60_000),
    /** For `fixed`: ± fraction of jitter (0 = none); default 0. */
    jitter: z.number().min(0).max(1).default(0),
  })
  .strict();
export type BackoffPolicy = z.infer<typeof backoffSchema>;

const keepJobsSchema = z
  .object({
    /** Keep at most this many seconds; BullMQ removes older jobs when new ones finish. */
    ageSeconds: positiveInt,
    /** Keep at most this many jobs. */
    count: nonNegativeInt,
  })
  .strict();

export const retentionSchema = z
  .object({
    /** Completed jobs: default 1 hour or 1,000 jobs, whichever first. */
    completed: keepJobsSchema.default({ ageSeconds: 3600, count: 1000 }),
    /** Failed jobs (the dead letters): default 7 days or 10,000 jobs, whichever first. */
    failed: keepJobsSchema.default({ ageSeconds: 7 * 24 * 3600, count: 10_000 }),
  })
  .strict();

export const retryBudgetSchema = z
  .object({
    /** Retries allowed per first attempt in the window; default 0.2 (20%). */
    ratio: z.number().min(0).max(10).default(0.2),
    /** Retries always allowed per second regardless of traffic; default 10. */
    minRetriesPerSecond: z.number().min(0).max(100_000).default(10),
    /** Sliding window length; default 10 s. */
    windowSeconds: positiveInt.max(300).default(10),
    /** What happens to a retry over budget: deferred to the lane's backoff cap, or failed; default defer. */
    onExhausted: z.enum(['defer', 'fail']).default('defer'),
  })
  .strict()
  .superRefine((budget, ctx) => {
    // A deferred retry runs only when the budget grants it: one that grants none holds every retry
    // of the lane forever (or until each job's deadline).
    // The allowance is floor(ratio × first attempts + minRetriesPerSecond × windowSeconds).
    if (budget.ratio === 0 && retryAllowance(0, 0, budget.minRetriesPerSecond * budget.windowSeconds) < 1 && budget.onExhausted === 'defer') {
      ctx.addIssue({
        code: 'custom',
        path: ['onExhausted'],
        message:
          'a budget of ratio 0 and fewer than one retry per window (minRetriesPerSecond × windowSeconds) allows no retry, so "defer" would hold every retry forever: expected "fail", or a budget that allows some',
      });
    }
  });
export type RetryBudgetPolicy = z.infer<typeof retryBudgetSchema>;

/** The classes a lane's rule may assign: the worker's own (unknown_handler, deadline_exceeded, …) stay its own. */
const ERROR_CLASS_NAMES = [
  'timeout',
  'network',
  'http_5xx',
  'http_4xx',
  'rate_limited',
  'validation',
  'handler',
  'unknown',
] as const;

/** A per-lane classification rule: errors with this code or HTTP status are (not) retried. */
export const errorRuleSchema = z
  .object({
    code: z.string().min(1).optional(),
    status: z.number().int().min(100).max(599).optional(),
    retryable: z.boolean(),
    errorClass: z.enum(ERROR_CLASS_NAMES).optional(),
  })
  .strict()
  .refine((rule) => rule.code !== undefined || rule.status !== undefined, 'expected code or status');

export const laneSchema = z
  .object({
    /** Handlers of this lane one worker process runs at once; required. */
    concurrency: positiveInt.max(1000),
    /** Cluster-wide cap across all worker replicas (BullMQ global concurrency); default none. */
    globalConcurrency: positiveInt.max(100_000).optional(),
    /** Admission limit on waiting + delayed + prioritized + paused jobs; default 1000. */
    maxQueueSize: positiveInt.default(1000),
    /** Attempts per job including the first; default 3. */
    attempts: positiveInt.max(100).default(3),
    backoff: backoffSchema.default({ strategy: 'exponential', baseMs: 1000, capMs: 60_000, jitter: 0 }),
    /** Per-attempt timeout; default 30000 ms. */
    timeoutMs: positiveInt.max(MAX_TIMER_MS).default(30_000),
    /** The attempt is failed at timeoutMs × this factor if the handler ignores its abort signal; default 1.5. */
    timeoutEscalationFactor: z.number().min(1).max(10).default(1.5),
    /**
     * Run handlers isolated in worker threads, so that a handler still running at
     * timeoutMs × timeoutEscalationFactor is really terminated; default false (in-process).
     */
    isolated: z.boolean().default(false),
    /**
     * In an isolated lane, how long a handler thread may take to start (load bullpen, the handlers
     * and tracing) before it is terminated and the attempt waiting for it fails (thread_start).
     * Start-up never counts against timeoutMs; default 60000 ms.
     */
    threadStartTimeoutMs: positiveInt.max(MAX_TIMER_MS).default(60_000),
    /** Total budget from enqueue (schedule-to-close); default none. */
    deadlineMs: positiveInt.optional(),
    /** Allowed job names; default any name. */
    jobNames: z.array(z.string().regex(JOB_NAME)).min(1).optional(),
    /** How long an idempotency key is remembered; default 24 hours. */
    idempotencyTtlMs: positiveInt.default(24 * 3600 * 1000),
    /** BullMQ lock duration; a stalled job is reclaimed after it; default 30000 ms. */
    lockDurationMs: positiveInt.min(1000).max(MAX_TIMER_MS).default(30_000),
    /**
     * How many times a job may lose its worker while running (crash, OOM kill, SIGKILL, a loop
     * blocked past the lock) and be put back to wait; one more and it fails as stalled, which
     * stops a job that kills its worker from killing one after another. Default 1 (BullMQ's).
     */
    maxStalls: z.number().int().min(0).max(100).default(1),
    retryBudget: retryBudgetSchema.default({ ratio: 0.2, minRetriesPerSecond: 10, windowSeconds: 10, onExhausted: 'defer' }),
    /** Whether a rate-limited (429 / Retry-After) retry uses up one of the job's attempts; default true. */
    rateLimitedConsumesAttempt: z.boolean().default(true),
    /**
     * With rateLimitedConsumesAttempt false: how many rate-limited retries a job may take without
     * using an attempt. Rate limited once more, it is a dead letter (rate_limited_retries_exhausted),
     * so that a dependency that never stops refusing cannot keep a job retrying forever; default 20.
     */
    maxRateLimitedRetries: positiveInt.max(10_000).default(20),
    /** Classification rules checked before the defaults; default none. */
    errorRules: z.array(errorRuleSchema).default([]),
    retention: retentionSchema.default({
      completed: { ageSeconds: 3600, count: 1000 },
      failed: { ageSeconds: 7 * 24 * 3600, count: 10_000 },
    }),
  })
  .strict();
export type LanePolicy = z.infer<typeof laneSchema>;

export const lanesFileSchema = z
  .object({
    /** Process-wide cap on handlers running at once in one worker; default 32. */
    maxHandlersPerProcess: positiveInt.max(10_000).default(32),
    lanes: z.record(z.string(), laneSchema).superRefine((lanes, ctx) => {
      const names = Object.keys(lanes);
      if (names.length === 0) ctx.addIssue({ code: 'custom', message: 'expected at least one lane' });
      for (const name of names) {
        if (!LANE_NAME.test(name)) {
          ctx.addIssue({ code: 'custom', path: [name], message: 'expected a lane name matching ^[a-z][a-z0-9_-]{0,62}$' });
        }
      }
    }),
  })
  .strict();
export type LanesFile = z.infer<typeof lanesFileSchema>;

/** The default lanes mirror a mixed workload of tool calls, file I/O, review and slow models. */
export const DEFAULT_LANES_FILE: z.input<typeof lanesFileSchema> = {
  maxHandlersPerProcess: 32,
  lanes: {
    tool_call: { concurrency: 8 },
    file_read: { concurrency: 16 },
    file_write: { concurrency: 4 },
    critic: { concurrency: 3 },
    forecast_model: { concurrency: 1, timeoutMs: 120_000 },
  },
};
