// Every Redis key and channel bullpen uses besides BullMQ's own is named here, derived from the
// lane's BullMQ-qualified name so that it shares the lane's hash slot on Redis Cluster.

/** BullMQ's qualified queue name: `<prefix>:<lane>`. */
export function laneQualifiedName(prefix: string, lane: string): string {
  return `${prefix}:${lane}`;
}

/** BullMQ's own keys of a lane that hold jobs not yet started. */
export function laneBacklogKeys(prefix: string, lane: string) {
  const q = laneQualifiedName(prefix, lane);
  return {
    wait: `${q}:wait`,
    paused: `${q}:paused`,
    delayed: `${q}:delayed`,
    prioritized: `${q}:prioritized`,
  } as const;
}

/** Admission reservations in flight (ZSET member = reservation id, score = expiry ms). */
export function admissionKey(prefix: string, lane: string): string {
  return `${laneQualifiedName(prefix, lane)}:bp:admission`;
}

/** Pub/sub channel on which the API asks workers to abort an active job. */
export function cancelChannel(prefix: string): string {
  return `${prefix}:bp:cancel`;
}

/** One second's retry-budget bucket of a lane: hash {f: first attempts, r: retries}. */
export function retryBudgetBucketKey(prefix: string, lane: string, epochSecond: number): string {
  return `${laneQualifiedName(prefix, lane)}:bp:budget:${epochSecond}`;
}
