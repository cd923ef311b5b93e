// How many stream entries were trimmed before the exporter read them. Exact, from counts Redis 7
// keeps per stream (XINFO STREAM `entries-added`): the exporter keeps `read`, the number of
// entries it has accounted for (counted, or declared lost), all of them at or before its position.
//
// While the stream's first entry is at or before the position, nothing after the position has
// been trimmed. Once it is after the position, every entry after the position is either still
// in the stream, held in the batch just read (read before a trim overtook it), or lost:
//   lost = entriesAdded − read − length − held.

/** Compares two stream ids ("ms-seq"). */
export function compareStreamIds(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  const ms = BigInt(am) - BigInt(bm);
  if (ms !== 0n) return ms < 0n ? -1 : 1;
  const seq = BigInt(as) - BigInt(bs);
  return seq === 0n ? 0 : seq < 0n ? -1 : 1;
}

/** Milliseconds part of a stream id. */
export function streamIdTimeMs(id: string): number {
  return Number(id.split('-')[0] ?? 0);
}

export interface StreamInfo {
  length: number;
  lastGeneratedId: string;
  firstEntryId: string | undefined;
  /** Redis 7+; undefined on older servers, where loss cannot be measured. */
  entriesAdded: number | undefined;
}

/** Parses ioredis' flat reply to XINFO STREAM. */
export function parseStreamInfo(reply: unknown): StreamInfo {
  if (!Array.isArray(reply)) throw new Error('unexpected XINFO STREAM reply');
  const map = new Map<string, unknown>();
  for (let i = 0; i + 1 < reply.length; i += 2) map.set(String(reply[i]), reply[i + 1]);
  const first = map.get('first-entry');
  const added = map.get('entries-added');
  return {
    length: Number(map.get('length') ?? 0),
    lastGeneratedId: String(map.get('last-generated-id') ?? '0-0'),
    firstEntryId: Array.isArray(first) && typeof first[0] === 'string' ? first[0] : undefined,
    entriesAdded: added === undefined || added === null ? undefined : Number(added),
  };
}

export type LossVerdict =
  | { kind: 'none' }
  | { kind: 'lost'; lost: number }
  /**
   * The stream was deleted (and maybe created again): the saved position means nothing there.
   * Start over at 0-0 with `read` entries accounted for; `lost` of them were trimmed unseen.
   */
  | { kind: 'recreated'; lost: number; read: number }
  | { kind: 'unknown' };

export const START_POSITION = '0-0';

/**
 * @param info the stream now; undefined when it does not exist
 * @param position the exporter's saved position (entries at or before it are accounted for)
 * @param read entries accounted for so far
 * @param heldIds ids of the batch read after `position` but not yet accounted for
 */
export function assessLoss(
  info: StreamInfo | undefined,
  position: string,
  read: number,
  heldIds: readonly string[] = [],
): LossVerdict {
  if (info === undefined) {
    return position === START_POSITION && read === 0 ? { kind: 'none' } : { kind: 'recreated', lost: 0, read: 0 };
  }
  if (info.entriesAdded === undefined) return { kind: 'unknown' };
  if (info.entriesAdded < read || compareStreamIds(info.lastGeneratedId, position) < 0) {
    const trimmed = Math.max(0, info.entriesAdded - info.length);
    return { kind: 'recreated', lost: trimmed, read: trimmed };
  }
  const first = info.firstEntryId;
  if (first !== undefined && compareStreamIds(first, position) <= 0) return { kind: 'none' };
  const held = first === undefined ? heldIds.length : heldIds.filter((id) => compareStreamIds(id, first) < 0).length;
  const lost = info.entriesAdded - read - info.length - held;
  return lost > 0 ? { kind: 'lost', lost } : { kind: 'none' };
}
