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
 * One sentence for the log, a 503 or a startup error: what Redis refused, where the credentials
 * come from and what to do. `err` must be an access refusal (accessRefusalOf).
 */
export function explainAccessRefusal(err: Error, target: RedisTarget, prefix: string): string {
  const setting = credentialsSetting(target);
  const said = repliesOf(err).find((r) => accessRefusalOf(r))?.message ?? err.message;
  if (accessRefusalOf(err) === 'credentials') {
    return `Redis refused the user and password in ${setting} (${said}); fix them there or on the Redis server`;
  }
  return (
    `the Redis user in ${setting} may not run a command or use a key that bullpen needs (${said}); ` +
    `grant it: ACL SETUSER <user> ${requiredAclRules(prefix)}`
  );
}

export interface RedisAccessWatchOptions {
  target: RedisTarget;
  prefix: string;
  logger: Logger;
  /** Length of a window in which a repeated refusal is only counted; default 30000 ms. */
  logIntervalMs?: number;
}

/**
 * Watches connections for access refusals: logs each once, then once per interval with its count
 * (a client retrying bad credentials gets one a reconnect), and remembers the latest until a
 * watched connection is ready again, so that readiness checks and 503s can say why.
 */
export class RedisAccessWatch {
  private latest: string | undefined;
  private readonly log: RepeatLimiter;
  /** Errors already counted: BullMQ passes a connection's error on from each queue and worker using it. */
  private readonly seen = new WeakSet<Error>();

  constructor(private readonly options: RedisAccessWatchOptions) {
    this.log = new RepeatLimiter({
      intervalMs: options.logIntervalMs,
      onRepeats: (explanation, repeats) =>
        options.logger.error('redis refused access', { error: explanation, repeats, interval_ms: options.logIntervalMs ?? 30_000 }),
    });
  }

  /** The latest refusal of credentials, explained, while no watched connection has been ready since. */
  get refusal(): string | undefined {
    return this.latest;
  }

  /** Watches a client's (and a cluster's nodes') errors; a ready connection clears the refusal. */
  watch(client: RedisClient | EventEmitter): this {
    client.on('error', (err: Error) => this.note(err));
    if (client instanceof Cluster) client.on('node error', (err: Error) => this.note(err));
    client.on('ready', () => (this.latest = undefined));
    return this;
  }

  /** Records and logs `err` if it is an access refusal, and returns it explained; else undefined. */
  note(err: unknown): string | undefined {
    if (!(err instanceof Error) || !accessRefusalOf(err)) return undefined;
    const explanation = explainAccessRefusal(err, this.options.target, this.options.prefix);
    if (this.seen.has(err)) return explanation;
    this.seen.add(err);
    // A connection refused its credentials is not ready; a missing permission fails commands on
    // a ready one, each saying so itself.
    if (accessRefusalOf(err) === 'credentials') this.latest = explanation;
    if (this.log.admit(explanation)) this.options.logger.error('redis refused access', { error: explanation });
    return explanation;
  }

  close(): void {
    this.log.close();
  }
}
