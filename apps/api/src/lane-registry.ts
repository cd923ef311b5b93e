// The API's BullMQ handles on the shared producer connection: one Queue per lane, created on
// first use. BullMQ initialises each handle once (it waits for the connection, then reads the
// server version); if that fails, for instance when Redis drops in that instant, the handle is
// broken for good, so it is replaced here and the API recovers from an outage without a restart.
import type { Queue } from 'bullmq';
import type { RedisClient } from '@bullpen/core';
import { createLaneQueue, type BullpenConfig, type Logger } from '@bullpen/core';

interface Handle<T> {
  readonly instance: T;
  failed: boolean;
}

interface Closable {
  close(): Promise<void>;
  waitUntilReady(): Promise<unknown>;
  on(event: 'error', listener: (err: Error) => void): unknown;
}

export class LaneRegistry {
  private readonly queues = new Map<string, Handle<Queue>>();
  private closed = false;

  constructor(
    private readonly config: BullpenConfig,
    private readonly redis: RedisClient,
    private readonly logger: Logger,
  ) {}

  /** The lane's Queue; `lane` must be a configured lane. */
  queue(lane: string): Queue {
    const current = this.queues.get(lane);
    if (current && !current.failed) return current.instance;
    const handle = this.track(createLaneQueue(this.config, lane, this.redis), `queue ${lane}`, current);
    this.queues.set(lane, handle);
    return handle.instance;
  }

  /** Closes every handle; the shared connection stays open (its owner closes it). */
  async close(): Promise<void> {
    this.closed = true;
    const handles: Handle<Closable>[] = [...this.queues.values()];
    this.queues.clear();
    await Promise.all(handles.map((handle) => this.closeQuietly(handle.instance)));
  }

  private track<T extends Closable>(instance: T, what: string, replaced: Handle<T> | undefined): Handle<T> {
    if (this.closed) throw new Error('LaneRegistry is closed');
    if (replaced) {
      this.logger.warn('replacing a BullMQ handle whose initialisation failed', { handle: what });
      void this.closeQuietly(replaced.instance);
    }
    const handle: Handle<T> = { instance, failed: false };
    // Connection errors also reach each request through the guard; here they are only noise.
    instance.on('error', (err) => this.logger.debug('bullmq handle error', { handle: what, error: err.message }));
    instance.waitUntilReady().catch(() => {
      handle.failed = true;
    });
    return handle;
  }

  private async closeQuietly(instance: Closable): Promise<void> {
    try {
      await instance.close();
    } catch (err) {
      this.logger.debug('closing a BullMQ handle failed', { error: (err as Error).message });
    }
  }
}
