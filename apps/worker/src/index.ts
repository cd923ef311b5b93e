// The worker package's public surface: what a handler module or an embedding program imports.
export { defineHandler, isHandler, HANDLER_BRAND, type Handler, type HandlerContext, type HandlerDefinition } from './handler';
export { HandlerRegistry } from './registry';
export { buildRegistry } from './default-registry';
export { loadHandlersDir, type LoadedHandler } from './handlers-dir';
export { builtinHandlers, cpuHandler, failHandler, httpHandler, noopHandler, sleepHandler } from './handlers';
export { WorkerRuntime, type RuntimeStatus, type WorkerRuntimeOptions, type WorkerRuntimeStats } from './runtime';
export { WorkerMetrics } from './worker-metrics';
export { MetricsServer, type Health } from './metrics-server';
export { LIFECYCLE_EVENT } from '@bullpen/core';
// What a handler throws to say how its attempt failed (README: "Retries that protect
// dependencies"), and the reason its signal aborts with when its job is cancelled. The same classes
// the worker classifies with, so `instanceof` holds for a handler loaded from HANDLERS_DIR.
export {
  BullpenError,
  CancelledError,
  PermanentError,
  RateLimitedError,
  RetryableError,
  TimeoutError,
  ERROR_CLASSES,
  type ErrorClass,
} from '@bullpen/core';
// The reason a handler's signal aborts with when the worker's shutdown grace period ends before it.
export { WorkerStoppingError } from './shutdown-hand-back';
export type {
  AttemptRef,
  AttemptTimings,
  DeadReason,
  DelaySource,
  MemoryState,
  RetryReason,
  WorkerEventMap,
  WorkerEventName,
} from './events';
export { backoffDelay, withRetryAfter, type BackoffInput } from './backoff';
export { decideRetry, type RetryDecision, type RetryDecisionInput } from './retry-decision';
export { planRetry, DEADLINE_EXCEEDED, RETRY_BUDGET_EXHAUSTED, type RetryPlan, type RetryPlanInput } from './retry-plan';
export { seededRandom, type RandomSource } from './random';
export { HandlerSlots, LaneSlots, type Release } from './handler-slots';
export { shareSlots } from './slot-share';
export { MemoryGuard, type MemoryGuardOptions, type MemoryUsageSample } from './memory-guard';
