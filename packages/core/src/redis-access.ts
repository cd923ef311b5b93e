// Redis refusing bullpen's access: credentials it does not accept (a typo, a rotated password, a
// disabled user) or an ACL user without a permission bullpen needs. Neither goes away by retrying
// a moment later, and neither is an outage: the operator has to act, so every app names the
// refusal, the setting that holds the credentials, and what to grant, instead of "reconnecting".
import { EventEmitter } from 'node:events';
import { Cluster, ReplyError } from 'ioredis';
import type { Logger } from './logger';
import type { RedisClient } from './redis';
import type { RedisTarget } from './redis-target';
import { RepeatLimiter } from './repeat-limiter';

export type AccessRefusal = 'credentials' | 'permission';

/**
 * What an ACL user of bullpen needs, besides its keys (`~<prefix>:*`) and its cancel channel
 * (`&<prefix>:*`): everything but Redis's dangerous commands, and of those INFO (BullMQ reads the
 * server's version; the API and the exporter its memory) and CLIENT LIST (the exporter counts
 * each lane's workers).
 */
export const REQUIRED_ACL_RULES = '+@all -@dangerous +info +client|list';

/** The ACL rules that let an ACL user run bullpen under `prefix`, for messages and the README. */
export function requiredAclRules(prefix: string): string {
  return `resetkeys ~${prefix}:* resetchannels &${prefix}:* ${REQUIRED_ACL_RULES}`;
}

/** Redis's error replies in `err`: itself, or those an aborted transaction carries. */
function repliesOf(err: unknown): Error[] {
  if (!(err instanceof ReplyError)) return [];
  const previous = (err as { previousErrors?: unknown[] }).previousErrors;
  return [err as Error, ...(Array.isArray(previous) ? previous.filter((e): e is Error => e instanceof ReplyError) : [])];
}

/**
 * Whether `err` is Redis refusing bullpen's credentials (WRONGPASS, NOAUTH, or Redis 5's
 * "invalid password") or a command or key the user may not use (NOPERM; inside a script Redis 7
 * says so as an ERR), also inside an aborted transaction; undefined for anything else.
 */
export function accessRefusalOf(err: unknown): AccessRefusal | undefined {
  for (const reply of repliesOf(err)) {
    const message = reply.message;
    if (/^(WRONGPASS|NOAUTH) /.test(message) || message.startsWith('ERR invalid password')) return 'credentials';
    if (message.startsWith('NOPERM ') || message.startsWith("ERR The user executing the script can't")) return 'permission';
  }
  return undefined;
}

/** The setting that holds the credentials bullpen presents to the Redis servers that hold its data. */
export function credentialsSetting(target: RedisTarget): string {
  return target.mode === 'cluster' ? 'REDIS_CLUSTER_NODES' : 'REDIS_URL';
}

/**
 * The ACL user bullpen presents to the servers that hold its data: the one its URL names, else
 * Redis's `default` (a URL with a password alone, or none). Redis's NOPERM does not name it
 * before Redis 7.2, and with several apps and users the operator has to know whom to grant.
 */
export function redisUser(target: RedisTarget): string {
  if (target.mode !== 'standalone') return target.auth.username ?? 'default';
  try {
    return decodeURIComponent(new URL(target.url).username) || 'default';
  } catch {
    return 'default';
  }
}

/**
 * One sentence for the log, a 503 or a startup error: what Redis refused, where the credentials
 * come from and what to do. `err` must be an access refusal (accessRefusalOf).
 */
export function explainAccessRefusal(err: Error, target: RedisTarget, prefix: string): string {
  const setting = credentialsSetting(target);
  const said = repliesOf(err).find((r) => accessRefusalOf(r))?.message ?? err.message;
  if (accessRefusalOf(err) === 'credentials') {
    return `Redis refused the user and password in ${setting} (${said}); fix them there or on the Redis server`;
  }
  const user = redisUser(target);
  return (
    `the Redis user ${JSON.stringify(user)} in ${setting} may not run a command or use a key that bullpen needs (${said}); ` +
    `grant it: ACL SETUSER ${user} ${requiredAclRules(prefix)}`
  );
}

export interface RedisConnectionWatchOptions {
  target: RedisTarget;
  prefix: string;
  logger: Logger;
  /** Length of a window in which a repeated error is only counted; default 30000 ms. */
  logIntervalMs?: number;
}

/** Whether the connections to `target` speak TLS (rediss:// URLs). */
function usesTls(target: RedisTarget): boolean {
  return target.mode === 'standalone' ? target.url.trim().toLowerCase().startsWith('rediss:') : target.auth.tls;
}

/**
 * `err`'s message, with a hint when it is a connect timeout over TLS: a Redis that does not speak
 * TLS on that port takes the handshake for a command it waits to see the end of, and never
 * answers, which looks like a host that cannot be reached.
 */
function withTlsHint(err: Error, target: RedisTarget): string {
  if (!usesTls(target) || !/ETIMEDOUT/.test(err.message)) return err.message;
  return `${err.message} (the URL is rediss://: if this Redis port does not speak TLS, it never answers the TLS handshake; use redis:// for it)`;
}

/**
 * Watches connections for the errors that keep them from Redis and says what they are: each
 * message is logged once, then once per interval with its count (a client retrying gets one a
 * reconnect). Access refusals are logged as errors with what to do ('redis refused access');
 * anything else (a name that does not resolve, a refused connection, a certificate not trusted)
 * as a warning ('cannot reach redis'). The latest is remembered until a watched connection is
 * ready again, so that readiness checks and 503s can say why Redis is not there.
 */
export class RedisConnectionWatch {
  private latest: string | undefined;
  private readonly refusals: RepeatLimiter;
  private readonly failures: RepeatLimiter;
  /** Errors already logged: BullMQ passes a connection's error on from each queue and worker using it. */
  private readonly seen = new WeakSet<Error>();

  constructor(private readonly options: RedisConnectionWatchOptions) {
    const interval_ms = options.logIntervalMs ?? 30_000;
    this.refusals = new RepeatLimiter({
      intervalMs: interval_ms,
      onRepeats: (error, repeats) => options.logger.error('redis refused access', { error, repeats, interval_ms }),
    });
    this.failures = new RepeatLimiter({
      intervalMs: interval_ms,
      onRepeats: (error, repeats) => options.logger.warn('cannot reach redis', { error, repeats, interval_ms }),
    });
  }

  /** Why the watched connections are down: the latest connection error (explained if a refusal) since one was ready. */
  get downReason(): string | undefined {
    return this.latest;
  }

  /** Watches a client's (and a cluster's nodes') connection errors; a ready connection clears the reason. */
  watch(client: RedisClient | EventEmitter): this {
    client.on('error', (err: Error) => this.connectionError(err));
    if (client instanceof Cluster) client.on('node error', (err: Error) => this.connectionError(err));
    client.on('ready', () => (this.latest = undefined));
    return this;
  }

  /**
   * Records and logs `err` if it is an access refusal (from a connection or a command), and
   * returns it explained; else undefined.
   */
  note(err: unknown): string | undefined {
    if (!(err instanceof Error) || !accessRefusalOf(err)) return undefined;
    const explanation = explainAccessRefusal(err, this.options.target, this.options.prefix);
    if (this.seen.has(err)) return explanation;
    this.seen.add(err);
    // A connection refused its credentials is not ready; a missing permission fails commands on
    // a ready one, each saying so itself.
    if (accessRefusalOf(err) === 'credentials') this.latest = explanation;
    if (this.refusals.admit(explanation)) this.options.logger.error('redis refused access', { error: explanation });
    return explanation;
  }

  /** Whether `err` has been logged here: a watched connection's error, or an access refusal. */
  handled(err: unknown): boolean {
    return (err instanceof Error && this.seen.has(err)) || this.note(err) !== undefined;
  }

  private connectionError(err: Error): void {
    if (this.note(err) !== undefined || this.seen.has(err)) return;
    this.seen.add(err);
    const message = withTlsHint(err, this.options.target);
    this.latest = message;
    if (this.failures.admit(message)) this.options.logger.warn('cannot reach redis', { error: message });
  }

  close(): void {
    this.refusals.close();
    this.failures.close();
  }
}
