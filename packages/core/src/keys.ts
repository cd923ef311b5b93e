// Every Redis key and channel bullpen uses besides BullMQ's own is named here. Each lane is a
// BullMQ queue under its own prefix, `<prefix>:{<lane>}`, whose hash tag puts all of a lane's
// keys (BullMQ's and bullpen's) in one Redis Cluster slot while different lanes spread over
// slots. Lua scripts and MULTIs therefore only ever touch one lane. The layout is the same on a
// single server, so moving to a cluster changes no key.

/** The BullMQ prefix of a lane's queue: `<prefix>:{<lane>}`. */
export function lanePrefix(prefix: string, lane: string): string {
  return `${prefix}:{${lane}}`;
}

/** BullMQ's qualified queue name: `<prefix>:{<lane>}:<lane>`. */
export function laneQualifiedName(prefix: string, lane: string): string {
  return `${lanePrefix(prefix, lane)}:${lane}`;
}

/** BullMQ's own keys of a lane that hold jobs not yet started. */
export function laneBacklogKeys(prefix: string, lane: string) {
  const { wait, paused, delayed, prioritized } = laneStateKeys(prefix, lane);
  return { wait, paused, delayed, prioritized } as const;
}

/** Admission reservations in flight, one per job (ZSET member = job id, score = expiry ms). */
export function admissionKey(prefix: string, lane: string): string {
  return `${laneQualifiedName(prefix, lane)}:bp:admission`;
}

/**
 * Admission reservations in flight for jobs added all or nothing, one per batch (ZSET member =
 * `<first job id>#<count>`, score = expiry ms).
 */
export function admissionGroupsKey(prefix: string, lane: string): string {
  return `${laneQualifiedName(prefix, lane)}:bp:admission:groups`;
}

/** Pub/sub channel on which the API asks workers to abort an active job (not a key: no slot). */
export function cancelChannel(prefix: string): string {
  return `${prefix}:bp:cancel`;
}

/** One second's retry-budget bucket of a lane: hash {f: first attempts, r: retries}. */
export function retryBudgetBucketKey(prefix: string, lane: string, epochSecond: number): string {
  return `${laneQualifiedName(prefix, lane)}:bp:budget:${epochSecond}`;
}

/** A lane's BullMQ event stream; bullpen's own processes add their `bp:` events to it too. */
export function laneEventsKey(prefix: string, lane: string): string {
  return `${laneQualifiedName(prefix, lane)}:events`;
}

/** BullMQ's keys of a lane by job state, its meta hash, and the prefix of its job hashes. */
export function laneStateKeys(prefix: string, lane: string) {
  const q = laneQualifiedName(prefix, lane);
  return {
    wait: `${q}:wait`,
    paused: `${q}:paused`,
    delayed: `${q}:delayed`,
    prioritized: `${q}:prioritized`,
    active: `${q}:active`,
    completed: `${q}:completed`,
    failed: `${q}:failed`,
    waitingChildren: `${q}:waiting-children`,
    meta: `${q}:meta`,
    /** A job's hash is this prefix followed by its id. */
    jobPrefix: `${q}:`,
  } as const;
}

/** A job's BullMQ log list (its attempt rows) is its hash key followed by this. */
export const JOB_LOGS_SUFFIX = ':logs';

/** A job's hash and its BullMQ log list (where the worker appends attempt rows). */
export function jobKeys(prefix: string, lane: string, jobId: string) {
  const job = `${laneQualifiedName(prefix, lane)}:${jobId}`;
  return { job, logs: `${job}${JOB_LOGS_SUFFIX}`, lock: `${job}:lock`, deadLetterClaim: `${job}:bp:dead-claim` } as const;
}

/**
 * BullMQ's keys of a parent job's children (flows). bullpen never makes flows, but a plain BullMQ
 * producer may; a job that has any of them, or a parent, is removed by BullMQ's own removal, which
 * keeps the parent and its children consistent.
 */
export function jobChildKeys(prefix: string, lane: string, jobId: string) {
  const { job } = jobKeys(prefix, lane, jobId);
  return { dependencies: `${job}:dependencies`, processed: `${job}:processed`, failed: `${job}:failed`, unsuccessful: `${job}:unsuccessful` } as const;
}

/** The exporter's persisted totals and stream position for one lane (a hash). */
export function exporterStateKey(prefix: string, lane: string): string {
  return `${laneQualifiedName(prefix, lane)}:bp:exporter`;
}

/**
 * Every lane an app of this prefix has been configured with (a set; lanes are never removed), so
 * that the exporter can find jobs left in a lane that its lanes file no longer names.
 */
export function laneRegistryKey(prefix: string): string {
  return `${prefix}:bp:lanes`;
}

/** The exporter's leadership lease: the id of the exporter that reads and serves (exporter-lease.lua). */
export function exporterLeaderKey(prefix: string): string {
  return `${prefix}:bp:exporter:leader`;
}

/**
 * The secret with which every API replica seals dead-letter cursors (a string: 32 random bytes in
 * base64), set once by whichever replica needs it first.
 */
export function deadCursorSecretKey(prefix: string): string {
  return `${prefix}:bp:dead-cursor-secret`;
}

/**
 * A random id that the first bullpen process to reach this Redis writes once (a string, no TTL;
 * redis-data-loss.ts). Every process remembers it; finding it gone or replaced after a reconnect
 * means Redis lost bullpen's data.
 */
export function redisMarkerKey(prefix: string): string {
  return `${prefix}:bp:marker`;
}
