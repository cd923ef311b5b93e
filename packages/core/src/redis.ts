// Redis connections by role. Workers and event readers must wait out outages (BullMQ requires
// maxRetriesPerRequest: null); the API's producer connection fails fast so that a request gets
// a 503 instead of hanging while Redis is away. The same roles apply to every kind of target:
// one server, a Redis Cluster, or a master found through Sentinel (redis-target.ts).
import IORedis, { Cluster, ReplyError, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { RedisAuth, RedisTarget } from './redis-target';
import { coalesceWrites } from './write-coalescing';

/** A connection to one server (or a Sentinel-managed master) or to a Redis Cluster. */
export type RedisClient = IORedis | Cluster;

export type ConnectionRole = 'producer' | 'worker' | 'events';

/** How long a producer waits for a connection before giving up; reconnects continue behind it. */
export const PRODUCER_CONNECT_TIMEOUT_MS = 1000;

/** How long a producer's command may go unanswered; see ConnectionOverrides for the API's. */
export const PRODUCER_COMMAND_TIMEOUT_MS = 1000;

export interface ConnectionOverrides {
  /**
   * The connection's own per-command timeout (default PRODUCER_COMMAND_TIMEOUT_MS for a producer).
   * The API bounds each request's calls itself (redis-guard.ts) and gives its connection a longer
   * one as a backstop: ioredis's timer can fire on a busy event loop while Redis's answer waits
   * unread, and a write Redis applied would then be reported as unanswered.
   */
  commandTimeoutMs?: number;
}

function backoff(times: number): number {
  return Math.min(50 * 2 ** Math.min(times, 6), 2000);
}

/**
 * Whether `err` is Redis refusing a command with the error code `code` (a Redis error reply starts
 * with its code: `OOM ...`, `READONLY ...`). A transaction with a refused command fails as a whole
 * with EXECABORT, and ioredis hangs the refusals on it as `previousErrors`.
 */
export function isReplyWithCode(err: unknown, code: string): boolean {
  if (!(err instanceof ReplyError)) return false;
  if ((err as Error).message.startsWith(`${code} `)) return true;
  const previous = (err as { previousErrors?: unknown[] }).previousErrors;
  return Array.isArray(previous) && previous.some((e) => isReplyWithCode(e, code));
}

/**
 * Whether Redis refused a write because it is a replica: a primary that a failover demoted keeps
 * its clients connected and answers their writes with READONLY.
 */
export function isReadOnlyReply(err: unknown): boolean {
  return isReplyWithCode(err, 'READONLY');
}

/**
 * Error codes with which Redis refuses a command without running it, for a while: a primary
 * demoted by a failover (READONLY), a script or function running past busy-reply-threshold
 * (BUSY), a dataset still loading (LOADING), a replica cut off from its primary (MASTERDOWN).
 */
export const TRANSIENT_REFUSALS = ['READONLY', 'BUSY', 'LOADING', 'MASTERDOWN'] as const;
export type TransientRefusal = (typeof TRANSIENT_REFUSALS)[number];

/** The code of such a refusal (also inside an aborted transaction), or undefined. */
export function transientRefusalOf(err: unknown): TransientRefusal | undefined {
  return TRANSIENT_REFUSALS.find((code) => isReplyWithCode(err, code));
}

/**
 * After a failover, a connection still open to the old primary gets READONLY for every write; an
 * endpoint that follows the primary (a managed service's DNS name, a Sentinel) reaches the new one
 * on a new connection. So reconnect. A connection that queues commands while reconnecting sends
 * the refused one again there (2); a fail-fast one fails it (1), and its caller answers 503.
 */
function reconnectOnReadOnly(resend: boolean): (err: Error) => boolean | 1 | 2 {
  return (err) => (isReadOnlyReply(err) ? (resend ? 2 : 1) : false);
}

/**
 * TCP keepalive after this long idle, on every connection. Firewalls, NAT gateways and load
 * balancers between an app and Redis drop a connection idle for a few minutes (Azure's load
 * balancer after 4, AWS's NAT gateway and NLB after 350 s), so that the next request of an API
 * that had nothing to do meets a reset or silence. ioredis turns keepalive on with the system's
 * first probe after 2 hours (Linux's tcp_keepalive_time).
 */
export const TCP_KEEPALIVE_MS = 30_000;

export function redisOptions(role: ConnectionRole, name?: string, overrides: ConnectionOverrides = {}): RedisOptions {
  const base: RedisOptions = {
    lazyConnect: false,
    keepAlive: TCP_KEEPALIVE_MS,
    retryStrategy: backoff,
    ...(name ? { connectionName: name } : {}),
  };
  if (role === 'producer') {
    return {
      ...base,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectTimeout: PRODUCER_CONNECT_TIMEOUT_MS,
      commandTimeout: overrides.commandTimeoutMs ?? PRODUCER_COMMAND_TIMEOUT_MS,
      enableReadyCheck: true,
      // A dropped connection should not replay half-acknowledged writes on reconnect.
      autoResendUnfulfilledCommands: false,
      reconnectOnError: reconnectOnReadOnly(false),
    };
  }
  return { ...base, maxRetriesPerRequest: null, enableReadyCheck: true, reconnectOnError: reconnectOnReadOnly(true) };
}

function authOptions(auth: RedisAuth): RedisOptions {
  return {
    ...(auth.username ? { username: auth.username } : {}),
    ...(auth.password ? { password: auth.password } : {}),
    ...(auth.tls ? { tls: {} } : {}),
  };
}

/**
 * Cluster-level options for a role. The node connections get the role's options except their
 * reconnect strategy: the cluster client reconnects as a whole (clusterRetryStrategy). It queues
 * nothing offline for a producer, and ioredis follows MOVED/ASK on its own. With TLS, node
 * addresses are used as given, so certificates are checked against the names the cluster reports.
 */
export function clusterOptions(role: ConnectionRole, auth: RedisAuth, name?: string, overrides: ConnectionOverrides = {}): ClusterOptions {
  // Nor do they reconnect on READONLY: a demoted cluster node answers MOVED, which the cluster
  // client follows, and a node's own reconnect would only resend to the same node.
  const { enableOfflineQueue, lazyConnect, retryStrategy: _nodeRetry, reconnectOnError: _nodeReconnect, ...node } = redisOptions(
    role,
    name,
    overrides,
  );
  return {
    lazyConnect,
    enableReadyCheck: true,
    enableOfflineQueue: enableOfflineQueue ?? true,
    clusterRetryStrategy: backoff,
    redisOptions: { ...node, ...authOptions(auth) },
    ...(auth.tls ? { dnsLookup: (address, callback) => callback(null, address) } : {}),
  };
}

/** A URL names one server: its client is a plain ioredis client. */
export function createRedis(url: string, role: ConnectionRole, name?: string, overrides?: ConnectionOverrides): IORedis;
export function createRedis(target: RedisTarget | string, role: ConnectionRole, name?: string, overrides?: ConnectionOverrides): RedisClient;
export function createRedis(target: RedisTarget | string, role: ConnectionRole, name?: string, overrides: ConnectionOverrides = {}): RedisClient {
  const resolved: RedisTarget = typeof target === 'string' ? { mode: 'standalone', url: target } : target;
  let client: RedisClient;
  switch (resolved.mode) {
    case 'standalone':
      client = new IORedis(resolved.url, redisOptions(role, name, overrides));
      break;
    case 'cluster':
      client = new Cluster(
        resolved.nodes.map((n) => ({ host: n.host, port: n.port })),
        clusterOptions(role, resolved.auth, name, overrides),
      );
      break;
    case 'sentinel':
      client = new IORedis({
        ...redisOptions(role, name, overrides),
        ...authOptions(resolved.auth),
        sentinels: resolved.sentinels.map((n) => ({ host: n.host, port: n.port })),
        name: resolved.masterName,
        db: resolved.db,
        ...(resolved.sentinelAuth.username ? { sentinelUsername: resolved.sentinelAuth.username } : {}),
        ...(resolved.sentinelAuth.password ? { sentinelPassword: resolved.sentinelAuth.password } : {}),
        ...(resolved.sentinelAuth.tls ? { enableTLSForSentinelMode: true } : {}),
        sentinelRetryStrategy: backoff,
      });
      break;
  }
  // Errors surface on the commands that fail; an unhandled 'error' event must not crash a process.
  client.on('error', () => undefined);
  // One syscall for the writes of one callback and its promise jobs (write-coalescing.ts), on every node.
  if (client instanceof Cluster) client.on('+node', (node: IORedis) => coalesceWrites(node));
  else coalesceWrites(client);
  return client;
}

/** The primaries of a cluster client, or the client itself: where per-server commands go. */
export function serversOf(client: RedisClient): IORedis[] {
  return client instanceof Cluster ? client.nodes('master') : [client];
}

/**
 * Resolves once `client` is ready, at once when it already is. A fail-fast connection (role
 * 'producer') sends nothing before then, so a caller that just created it, or whose connection is
 * coming back, waits here up to `timeoutMs`. Rejects when the connection is not on its way up
 * (closed by the caller) or does not get there in time.
 */
export function whenReady(client: RedisClient, timeoutMs: number): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  if (client.status !== 'connecting' && client.status !== 'connect' && client.status !== 'reconnecting') {
    return Promise.reject(new Error(`Redis connection is ${client.status}`));
  }
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      reject(new Error(`Redis connection is ${client.status}`));
    }, timeoutMs);
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    client.once('ready', onReady);
  });
}

/** What reconnectNow() needs of an ioredis client's internals: the timer of its next attempt. */
interface PendingReconnect {
  reconnectTimeout?: NodeJS.Timeout | null;
}

/**
 * Makes a connection that is waiting out its reconnect delay (up to 2 s, see backoff) try again now,
 * for a caller that cannot wait that long (a shutdown handing its jobs back). Does nothing in any
 * other state. ioredis has no call for this: connect() starts an attempt, but the timer it had set
 * for its next one would still fire, and start a second attempt, or reopen the connection after a
 * close. So the timer, which ioredis keeps in a private field, is cleared first; should a later
 * ioredis keep it elsewhere, this does nothing and the connection keeps to its own delay
 * (redis.test.ts would tell).
 */
export function reconnectNow(client: RedisClient): void {
  if (client.status !== 'reconnecting') return;
  const pending = client as unknown as PendingReconnect;
  if (!pending.reconnectTimeout) return;
  clearTimeout(pending.reconnectTimeout);
  pending.reconnectTimeout = null;
  // A failed attempt is reported on 'error' and schedules the next one as any other does.
  client.connect().catch(() => undefined);
}
