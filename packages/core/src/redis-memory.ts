// What Redis says of its memory: how much it uses, its limit, and what it does at the limit. At
// `maxmemory` under the `noeviction` policy BullMQ needs, Redis refuses every write that may grow
// its memory with an OOM error: new jobs, and also the writes that move a job through its life
// (taking it, its lock, its completion), so a Redis that fills up cannot drain either. The API
// stops taking jobs short of the limit, the exporter exports these numbers, and workers recognise
// the refusal, from what is read here.
import type IORedis from 'ioredis';
import { Cluster } from 'ioredis';
import { isReplyWithCode, type RedisClient } from './redis';

export interface RedisMemory {
  /** `used_memory`: what Redis's allocator holds, the figure `maxmemory` is compared with. */
  usedBytes: number;
  /** `maxmemory`; 0 when Redis has no limit. */
  maxBytes: number;
  /** `maxmemory_policy`; bullpen needs `noeviction`, or Redis may drop jobs to make room. */
  policy: string;
}

/** The `used_memory`, `maxmemory` and `maxmemory_policy` fields of an `INFO memory` reply. */
export function parseMemoryInfo(info: string): RedisMemory {
  const fields = new Map<string, string>();
  for (const line of info.split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  const bytes = (field: string): number => {
    const value = Number(fields.get(field));
    if (!Number.isFinite(value) || value < 0) throw new Error(`INFO memory has no valid ${field}`);
    return value;
  };
  return { usedBytes: bytes('used_memory'), maxBytes: bytes('maxmemory'), policy: fields.get('maxmemory_policy') ?? 'unknown' };
}

/** One server's memory, in one round trip. */
export async function readMemory(server: IORedis): Promise<RedisMemory> {
  return parseMemoryInfo(await server.info('memory'));
}

/** `used / max`, or undefined when Redis has no limit. */
export function memoryRatio(memory: RedisMemory): number | undefined {
  return memory.maxBytes > 0 ? memory.usedBytes / memory.maxBytes : undefined;
}

/**
 * How a server is named in metrics and in a cluster's slot table: `host:port`; a master found
 * through Sentinel, which may move, by its group name.
 */
export function serverAddress(server: IORedis): string {
  const { sentinels, name, host, port } = server.options;
  return sentinels?.length ? `sentinel:${name}` : `${host}:${port}`;
}

/** Whether Redis refused a command because it is at `maxmemory` (also inside an aborted transaction). */
export function isOutOfMemoryReply(err: unknown): boolean {
  return isReplyWithCode(err, 'OOM');
}

/** CRC16/XMODEM, the hash Redis Cluster takes of a key (or its hash tag) mod 16384 for its slot. */
function crc16(bytes: Uint8Array): number {
  let crc = 0;
  for (const byte of bytes) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}

/** The cluster slot of a key, honouring a `{hash tag}` as Redis does. */
export function keySlot(key: string): number {
  const open = key.indexOf('{');
  const close = open >= 0 ? key.indexOf('}', open + 1) : -1;
  const hashed = close > open + 1 ? key.slice(open + 1, close) : key;
  return crc16(Buffer.from(hashed)) % 16384;
}

/**
 * The server that holds `key`: the client itself, or on a cluster the primary serving its slot
 * (undefined until the cluster has told the client its slots).
 */
export function serverAddressOfKey(client: RedisClient, key: string): string | undefined {
  if (!(client instanceof Cluster)) return serverAddress(client);
  return client.slots[keySlot(key)]?.[0];
}

/** The connection that serves `key`: the client itself, or on a cluster its node for the key's slot. */
export function serverOfKey(client: RedisClient, key: string): IORedis | undefined {
  if (!(client instanceof Cluster)) return client;
  const address = serverAddressOfKey(client, key);
  return client.nodes('master').find((node) => serverAddress(node) === address);
}

/**
 * Waits until `replicas` replicas have acknowledged every write this client has sent to the server
 * of `key` so far (Redis's WAIT), for at most `timeoutMs`; resolves to how many did. Redis
 * replicates asynchronously: a write the primary acknowledged is lost if it fails over before a
 * replica has it, unless the writer waits for the replicas first.
 */
export async function waitForReplicas(client: RedisClient, key: string, replicas: number, timeoutMs: number): Promise<number> {
  const server = serverOfKey(client, key);
  if (!server) throw new Error(`no connection to the Redis server of ${key}`);
  return Number(await server.call('WAIT', replicas, timeoutMs));
}
