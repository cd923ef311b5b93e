// Bounds every Redis call a request makes, so that an outage answers 503 at once (or within the
// timeout when Redis hangs) instead of holding the request: the producer connection does not
// queue commands offline, and BullMQ's own waits on its client are cut short here.
import { DEFAULT_API_REDIS_TIMEOUT_MS, UnavailableError, createRedis, type RedisConnectionWatch, type RedisClient, type RedisTarget } from '@bullpen/core';
import type IORedis from 'ioredis';
import { ReplyError } from 'ioredis';

/** Default per-call bound (API_REDIS_TIMEOUT_MS); the proof asks for a 503 within 2 s. */
export const REDIS_CALL_TIMEOUT_MS = DEFAULT_API_REDIS_TIMEOUT_MS;

/**
 * The API's producer connection: fails fast, queues nothing offline. Its own per-command timeout
 * is only a backstop behind the guard's bound, which decides for a request.
 */
export function createApiRedis(url: string, name?: string, callTimeoutMs?: number): IORedis;
export function createApiRedis(target: RedisTarget | string, name?: string, callTimeoutMs?: number): RedisClient;
export function createApiRedis(target: RedisTarget | string, name?: string, callTimeoutMs = REDIS_CALL_TIMEOUT_MS): RedisClient {
  return createRedis(target, 'producer', name, { commandTimeoutMs: 5 * callTimeoutMs });
}

/** The error classes (redis-errors, ioredis) of a connection aborted, refused or garbled. */
const CONNECTION_FAILURE_NAMES = new Set(['AbortError', 'InterruptError', 'MaxRetriesPerRequestError', 'ClusterAllFailedError', 'ParserError']);

/** What ioredis says when a command cannot be sent or answered for want of a connection. */
const CONNECTION_FAILURE_MESSAGES = [
  'Connection is closed',
  'Command timed out',
  "Stream isn't writeable",
  "Cluster isn't ready",
  'Cluster is disconnect',
  'Cluster is ended',
  'None of startup nodes is available',
  'Too many Cluster redirections',
  'Node is disconnected',
  'Failed to refresh slots cache',
  'Socket timeout',
  'All sentinels are unreachable',
];

/**
 * Whether a call failed for want of a connection: ioredis reports that with plain Errors, known by
 * their messages and the socket's error codes, or with an AbortError (MaxRetriesPerRequestError).
 * Anything else — a reply from Redis, BullMQ refusing a job's options before sending anything, a
 * programming error — is not an outage and must not be reported as one: a refused job is not
 * "maybe enqueued", and it must not fail the other jobs sent with it.
 */
export function isConnectionFailure(err: unknown): boolean {
  if (!(err instanceof Error) || err instanceof ReplyError) return false;
  if (CONNECTION_FAILURE_NAMES.has(err.name)) return true;
  const code = (err as NodeJS.ErrnoException).code;
  if (typeof code === 'string' && /^(E[A-Z]+|EAI_[A-Z]+)$/.test(code)) return true;
  return CONNECTION_FAILURE_MESSAGES.some((message) => err.message.startsWith(message));
}

/**
 * A call went out on a ready connection and no answer came back: unlike a connection that was
 * down before anything was sent, Redis may have applied it, so a write's outcome is unknown.
 */
export class RedisOutcomeUnknownError extends UnavailableError {
  readonly outcomeUnknown = true;
}

/** Redis took longer than the bound to answer; the call may still be applied after the answer. */
export class RedisTimeoutError extends RedisOutcomeUnknownError {}

/**
 * The connection failed while the call was in flight (Redis killed or restarted between doing a
 * write and answering it): ioredis rejects the call once reconnecting fails, without an answer.
 */
export class RedisConnectionLostError extends RedisOutcomeUnknownError {}

/** ioredis's connection status as a state a reader can take in ("connect" is connected, not yet ready). */
const CONNECTION_STATES: Readonly<Record<string, string>> = {
  wait: 'not connected yet',
  connecting: 'connecting',
  connect: 'connecting',
  reconnecting: 'reconnecting',
  close: 'disconnected',
  end: 'disconnected',
};

export class RedisGuard {
  /** @param watch says why the connection is down (a connection error, refused credentials) */
  constructor(
    private readonly redis: RedisClient,
    private readonly timeoutMs = REDIS_CALL_TIMEOUT_MS,
    private readonly watch?: RedisConnectionWatch,
  ) {}

  /** Whether the connection is up now; cheap, no I/O. */
  get ready(): boolean {
    return this.redis.status === 'ready';
  }

  /**
   * Runs one Redis call. Throws UnavailableError when the connection is down, so that nothing
   * was sent; RedisOutcomeUnknownError when the call fails for want of a connection after it
   * started, or takes longer than the bound.
   */
  async run<T>(call: () => Promise<T>): Promise<T> {
    if (!this.ready) throw new UnavailableError(this.notReadyReason());
    let timer: NodeJS.Timeout | undefined;
    let late: NodeJS.Immediate | undefined;
    try {
      const answer = call();
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          // Timers run before the I/O of the same turn of the event loop. On a busy event loop the
          // answer may already have arrived, unread, when the bound runs out: the pending I/O is
          // read first (setImmediate runs after it), so that an answer is not reported as unknown.
          late = setImmediate(() => reject(new RedisTimeoutError(`Redis did not answer within ${this.timeoutMs} ms`)));
        }, this.timeoutMs);
      });
      return await Promise.race([answer, timeout]);
    } catch (err) {
      if (err instanceof UnavailableError || !isConnectionFailure(err)) throw err;
      // The connection was ready when the call started, so the call may have reached Redis.
      throw new RedisConnectionLostError('Redis connection failed before it answered; retry shortly', { cause: err });
    } finally {
      clearTimeout(timer);
      if (late) clearImmediate(late);
    }
  }

  /** Why calls are refused while the connection is not ready. */
  notReadyReason(): string {
    const why = this.watch?.downReason;
    const state = CONNECTION_STATES[this.redis.status] ?? this.redis.status;
    return why ? `Redis is ${state}: ${why}` : `Redis is ${state}; retry shortly`;
  }

  /** PING within the bound; false instead of throwing. */
  async ping(): Promise<boolean> {
    try {
      return (await this.run(() => this.redis.ping())) === 'PONG';
    } catch {
      return false;
    }
  }
}
