// The dead-letter listing's cursor: the position (failure time, job id) after which the next page
// starts, sealed with AES-256-GCM. A page that scans its budget without filling ends at an entry
// that may be another tenant's, so the position must reveal nothing to the client; and it is bound
// to the tenant and lane it was given for, so that it cannot be replayed anywhere else. The key is
// one secret in Redis, shared by every API replica, created by whichever needs it first.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { deadCursorSecretKey, type RedisClient } from '@bullpen/core';

/** A position in the failed set, which is ordered by (finish time, id), both descending here. */
export interface DeadCursor {
  /** The failed set's score: the epoch ms at which the job failed. */
  score: number;
  id: string;
}

/** Whom a cursor was given to; a cursor opens only for the same tenant and lane. */
export interface DeadCursorScope {
  tenant: string;
  lane: string;
}

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

function additionalData({ tenant, lane }: DeadCursorScope): Buffer {
  // Tenant names and lane names hold no NUL, so the pair is read back one way only.
  return Buffer.from(`bullpen dead cursor\0${tenant}\0${lane}`, 'utf8');
}

/**
 * A random IV whose base64url text does not begin with `-` or `_` (a first byte of 0xf8 or more):
 * a cursor that began with a dash is taken for an option when pasted after `--cursor` on a
 * command line. Drawing again keeps the IV uniform over the rest; cursors stay the same format,
 * so replicas before and after this opened each other's.
 */
function cursorIv(): Buffer {
  for (;;) {
    const iv = randomBytes(IV_BYTES);
    if ((iv[0] ?? 0) < 0xf8) return iv;
  }
}

/** Seals `cursor` for `scope` with `key`: base64url of iv | ciphertext | tag. */
export function sealDeadCursor(key: Buffer, cursor: DeadCursor, scope: DeadCursorScope): string {
  const iv = cursorIv();
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(additionalData(scope));
  const body = Buffer.concat([cipher.update(JSON.stringify([cursor.score, cursor.id]), 'utf8'), cipher.final()]);
  return Buffer.concat([iv, body, cipher.getAuthTag()]).toString('base64url');
}

/** The position `text` was sealed with, if `key` sealed it for `scope`; undefined otherwise. */
export function openDeadCursor(key: Buffer, text: string, scope: DeadCursorScope): DeadCursor | undefined {
  if (!/^[A-Za-z0-9_-]+$/.test(text)) return undefined;
  const raw = Buffer.from(text, 'base64url');
  if (raw.length <= IV_BYTES + TAG_BYTES) return undefined;
  let plain: string;
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, raw.subarray(0, IV_BYTES));
    decipher.setAAD(additionalData(scope));
    decipher.setAuthTag(raw.subarray(raw.length - TAG_BYTES));
    plain = Buffer.concat([decipher.update(raw.subarray(IV_BYTES, raw.length - TAG_BYTES)), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
  let value: unknown;
  try {
    value = JSON.parse(plain);
  } catch {
    return undefined;
  }
  if (!Array.isArray(value) || value.length !== 2) return undefined;
  const [score, id] = value as unknown[];
  if (typeof score !== 'number' || !Number.isFinite(score) || typeof id !== 'string' || id.length === 0) return undefined;
  return { score, id };
}

/**
 * Seals and opens cursors with the deployment's key. The key is read from Redis at each use (one
 * GET per page listed), not kept: were it lost and made anew, every replica goes on with the same.
 */
export class DeadCursorCodec {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  async seal(cursor: DeadCursor, scope: DeadCursorScope): Promise<string> {
    return sealDeadCursor(await this.secret(), cursor, scope);
  }

  async open(text: string, scope: DeadCursorScope): Promise<DeadCursor | undefined> {
    return openDeadCursor(await this.secret(), text, scope);
  }

  private async secret(): Promise<Buffer> {
    const name = deadCursorSecretKey(this.prefix);
    let stored = await this.redis.get(name);
    if (stored === null) {
      // SET NX: of replicas that need it at once, the first one's key is the one all of them use.
      // Were it lost (a Redis emptied), a new one is made, and cursors sealed before are refused.
      await this.redis.set(name, randomBytes(KEY_BYTES).toString('base64'), 'NX');
      stored = await this.redis.get(name);
    }
    const key = stored === null ? undefined : Buffer.from(stored, 'base64');
    if (!key || key.length !== KEY_BYTES) throw new Error(`${name} does not hold a ${KEY_BYTES}-byte key in base64`);
    return key;
  }
}
