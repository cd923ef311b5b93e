// Writes one of bullpen's own events to a lane's stream, encoded by lane-events.ts.
import { laneEventsKey } from './keys';
import { encodeLaneEvent, type BullpenLaneEvent } from './lane-events';
import type { RedisClient } from './redis';

/** Adds one bullpen event to the lane's stream (XADD MAXLEN ~ maxLen); resolves to its id. */
export async function publishLaneEvent(
  redis: RedisClient,
  prefix: string,
  lane: string,
  ev: BullpenLaneEvent,
  maxLen: number,
): Promise<string> {
  const id = await redis.xadd(laneEventsKey(prefix, lane), 'MAXLEN', '~', maxLen, '*', ...encodeLaneEvent(ev));
  if (id === null) throw new Error('XADD returned no id');
  return id;
}
