// Admission control: reserve room in a lane before adding jobs, atomically across every producer
// (lua/admission.lua), so that a lane's backlog never exceeds its maxQueueSize.
import type { RedisClient } from './redis';
import { admissionKey, laneBacklogKeys } from './keys';
import { scriptCommand } from './lua';

/** How long a reservation holds room if its producer never adds the job nor releases it. */
export const RESERVATION_TTL_MS = 10_000;

const COMMAND = 'bullpenAdmission';

export interface AdmissionDecision {
  /** How many of the leading ids were granted; only those may be added. */
  granted: number;
  /** Jobs not yet started plus live reservations, as counted for the decision. */
  backlog: number;
}

interface AdmissionClient {
  [COMMAND](...args: (string | number)[]): Promise<[number, number]>;
}

function ensureCommand(redis: RedisClient): AdmissionClient {
  return scriptCommand<AdmissionClient>(redis, COMMAND, 'admission', 5);
}

export interface ReserveOptions {
  prefix: string;
  lane: string;
  maxQueueSize: number;
  /** Reservation ids, in order of preference; use the ids of the jobs about to be added. */
  ids: readonly string[];
  /** Default RESERVATION_TTL_MS. */
  ttlMs?: number;
}

/** Grants room for up to `ids.length` jobs, as many as fit; one round trip. */
export async function reserveAdmission(redis: RedisClient, options: ReserveOptions): Promise<AdmissionDecision> {
  const { prefix, lane, maxQueueSize, ids, ttlMs = RESERVATION_TTL_MS } = options;
  const backlog = laneBacklogKeys(prefix, lane);
  const [granted, counted] = await ensureCommand(redis)[COMMAND](
    backlog.wait,
    backlog.paused,
    backlog.delayed,
    backlog.prioritized,
    admissionKey(prefix, lane),
    maxQueueSize,
    ttlMs,
    ...ids,
  );
  return { granted, backlog: counted };
}

/** Reservations given back during this turn of the event loop, per connection and admission key. */
const pendingReleases = new Map<RedisClient, Map<string, string[]>>();

function flushReleases(redis: RedisClient): void {
  const byKey = pendingReleases.get(redis);
  pendingReleases.delete(redis);
  for (const [key, ids] of byKey ?? []) redis.zrem(key, ...ids).catch(() => undefined);
}

/**
 * Gives back reservations once their jobs have landed (or will not be added). Fire and forget:
 * a release that fails leaves reservations that expire on their own within the TTL. Releases
 * made in one turn of the event loop go out together, one ZREM per lane, so that a busy API
 * pays one command and one write for many jobs rather than one each.
 */
export function releaseAdmission(redis: RedisClient, prefix: string, lane: string, ids: readonly string[]): void {
  if (ids.length === 0) return;
  let byKey = pendingReleases.get(redis);
  if (!byKey) {
    byKey = new Map();
    pendingReleases.set(redis, byKey);
    setImmediate(flushReleases, redis);
  }
  const key = admissionKey(prefix, lane);
  const pending = byKey.get(key);
  if (pending) {
    for (const id of ids) pending.push(id);
  } else {
    byKey.set(key, [...ids]);
  }
}
