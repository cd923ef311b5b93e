// Keeps a connection that may sit idle from being closed by Redis's own idle `timeout` (common on
// managed Redis): Redis closes a client that sent nothing for that many seconds, and a fail-fast
// connection (the API's) then answers requests 503 while it reconnects, and logs an outage that
// is none. Redis does not apply the timeout to clients blocked in a command (BZPOPMIN, XREAD
// BLOCK) or subscribed, so the blocking readers need nothing of this.
import type IORedis from 'ioredis';
import { serversOf, type RedisClient } from './redis';

/**
 * How often to PING when the server's `timeout` cannot be read (CONFIG is renamed or refused, as
 * on most managed Redis): below any idle timeout over 10 s.
 */
export const HEARTBEAT_FALLBACK_INTERVAL_MS = 10_000;

/** Never PING more often than this, whatever the server's timeout (its least is 1 s). */
const HEARTBEAT_MIN_INTERVAL_MS = 250;

/**
 * The PING interval for a server whose `timeout` is `timeoutSeconds`: none when it closes no idle
 * client (0), else a third of it. Redis closes a client once the whole seconds since its last
 * command exceed the timeout, so a third leaves room for a late timer.
 */
export function heartbeatIntervalMs(timeoutSeconds: number | undefined): number | undefined {
  if (timeoutSeconds === undefined || !Number.isFinite(timeoutSeconds) || timeoutSeconds < 0) return HEARTBEAT_FALLBACK_INTERVAL_MS;
  if (timeoutSeconds === 0) return undefined;
  return Math.max(HEARTBEAT_MIN_INTERVAL_MS, Math.floor((timeoutSeconds * 1000) / 3));
}

/** The server's idle `timeout` in seconds, or undefined when it cannot be read. */
async function readIdleTimeout(server: IORedis): Promise<number | undefined> {
  try {
    const reply = (await server.config('GET', 'timeout')) as unknown;
    const value = Array.isArray(reply) ? reply[1] : undefined;
    return typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * PINGs every primary of a client below the servers' idle timeout, read again each time the client
 * is ready (a reconnect also follows a `CONFIG SET timeout`). Nothing when the servers close no
 * idle client. start() begins, close() stops.
 */
export class RedisHeartbeat {
  /** The PING interval in use, or undefined when none is needed (or not known yet). */
  intervalMs: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** The latest reading of the servers' timeouts; an earlier one still answering is ignored. */
  private configuring: Promise<void> | undefined;
  private stopped = false;
  private readonly onReady = () => this.configure();

  constructor(private readonly client: RedisClient) {}

  start(): this {
    this.client.on('ready', this.onReady);
    if (this.client.status === 'ready') this.configure();
    return this;
  }

  async close(): Promise<void> {
    this.stopped = true;
    this.client.off('ready', this.onReady);
    clearInterval(this.timer);
    await this.configuring;
  }

  private configure(): void {
    const run = async (): Promise<void> => {
      const servers = serversOf(this.client);
      const timeouts = await Promise.all(servers.map((server) => readIdleTimeout(server)));
      if (this.stopped || this.configuring !== reading) return;
      // The shortest wins; a server that would not say is taken at the fallback.
      const intervals = timeouts.map(heartbeatIntervalMs).filter((ms): ms is number => ms !== undefined);
      this.intervalMs = intervals.length > 0 ? Math.min(...intervals) : undefined;
      clearInterval(this.timer);
      this.timer = undefined;
      if (this.intervalMs === undefined) return;
      this.timer = setInterval(() => this.beat(), this.intervalMs);
      this.timer.unref();
    };
    const reading: Promise<void> = Promise.resolve().then(run);
    this.configuring = reading;
  }

  private beat(): void {
    // A connection that is down is the reconnect's business; a PING that fails is dropped.
    if (this.client.status !== 'ready') return;
    for (const server of serversOf(this.client)) {
      if (server.status === 'ready') server.ping().catch(() => undefined);
    }
  }
}
