// Admission control: reserve room in a lane before adding jobs, atomically across every producer
// (lua/admission.lua), so that a lane's backlog never exceeds its maxQueueSize.
import type { RedisClient } from './redis';
import { admissionGroupsKey, admissionKey, laneBacklogKeys } from './keys';
import { scriptCommand } from './lua';

/** How long a reservation holds room if its producer never adds the job nor releases it. */
export const RESERVATION_TTL_MS = 10_000;

const COMMAND = 'bullpenAdmission';

/** What a producer gives back once its jobs have landed (releaseAdmission). */
export interface Reservation {
  key: string;
  members: string[];
}

export interface AdmissionDecision {
  /** How many of the leading ids were granted; only those may be added. */
  granted: number;
  /** Jobs not yet started plus live reservations, as counted for the decision. */
  backlog: number;
  /** The granted reservation, for releaseAdmission. */
  reservation: Reservation;
}

interface AdmissionClient {
  [COMMAND](...args: (string | number)[]): Promise<[number, number]>;
}

function ensureCommand(redis: RedisClient): AdmissionClient {
  return scriptCommand<AdmissionClient>(redis, COMMAND, 'admission', 6);
}

export interface ReserveOptions {
  prefix: string;
  lane: string;
  maxQueueSize: number;
  /** Reservation ids, in order of preference; use the ids of the jobs about to be added. */
  ids: readonly string[];
  /**
   * The granted jobs will be added all or nothing, in one MULTI, in this order: they are reserved
   * as one group, which costs Redis one member for the batch instead of one per job.
   */
  atomic?: boolean;
  /** Default RESERVATION_TTL_MS. */
  ttlMs?: number;
}

/** Grants room for up to `ids.length` jobs, as many as fit; one round trip. */
export async function reserveAdmission(redis: RedisClient, options: ReserveOptions): Promise<AdmissionDecision> {
  const { prefix, lane, maxQueueSize, ids, atomic = false, ttlMs = RESERVATION_TTL_MS } = options;
  const backlog = laneBacklogKeys(prefix, lane);
  const perJob = admissionKey(prefix, lane);
  const groups = admissionGroupsKey(prefix, lane);
  const grouped = atomic && ids.length > 0;
  const [granted, counted] = await ensureCommand(redis)[COMMAND](
    backlog.wait,
    backlog.paused,
    backlog.delayed,
    backlog.prioritized,
    perJob,
    groups,
    maxQueueSize,
    ttlMs,
    ...(grouped ? ['group', ids.length, ids[0] as string] : ['ids', ...ids]),
  );
  const reservation: Reservation =
    grouped && granted > 0 ? { key: groups, members: [`${ids[0]}#${granted}`] } : { key: perJob, members: ids.slice(0, granted) };
  return { granted, backlog: counted, reservation };
}

/** Reservations given back during this turn of the event loop, per connection and key. */
const pendingReleases = new Map<RedisClient, Map<string, string[]>>();

function flushReleases(redis: RedisClient): void {
  const byKey = pendingReleases.get(redis);
  pendingReleases.delete(redis);
  for (const [key, members] of byKey ?? []) redis.zrem(key, ...members).catch(() => undefined);
}

/**
 * Gives back a reservation once its jobs have landed (or will not be added). Fire and forget:
 * a release that fails leaves reservations that expire on their own within the TTL. Releases
 * made in one turn of the event loop go out together, one ZREM per key, so that a busy API
 * pays one command and one write for many jobs rather than one each.
 */
export function releaseAdmission(redis: RedisClient, { key, members }: Reservation): void {
  if (members.length === 0) return;
  let byKey = pendingReleases.get(redis);
  if (!byKey) {
    byKey = new Map();
    pendingReleases.set(redis, byKey);
    setImmediate(flushReleases, redis);
  }
  const pending = byKey.get(key);
  if (pending) {
    for (const member of members) pending.push(member);
  } else {
    byKey.set(key, [...members]);
  }
}
