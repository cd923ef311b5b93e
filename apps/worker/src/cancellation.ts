// Listens on the cancel channel, where the API asks workers to abort an active job. Every worker
// hears every message; the one running the job aborts the job's signal and the attempt fails
// permanently with errorClass `cancelled`. A message that comes before the job's attempt has
// registered is kept briefly for it (early-cancels.ts).
import { cancelChannel, createRedis, type BullpenConfig, type Logger } from '@bullpen/core';
import type { RedisClient } from '@bullpen/core';
import { z } from 'zod';

export const cancelMessageSchema = z.object({ lane: z.string().min(1), jobId: z.string().min(1) });
export type CancelMessage = z.infer<typeof cancelMessageSchema>;

/** Aborts the job if this process runs it; returns whether it did. */
export type CancelJob = (message: CancelMessage) => boolean;

export class CancellationListener {
  private subscriber: RedisClient | undefined;

  constructor(
    private readonly config: BullpenConfig,
    private readonly logger: Logger,
    private readonly cancelJob: CancelJob,
    /** Watches the subscriber's connection errors (the runtime's RedisConnectionWatch). */
    private readonly watch: (client: RedisClient) => void = () => undefined,
  ) {}

  async start(): Promise<void> {
    // A subscribed connection can run no other commands, hence a dedicated one.
    const subscriber = createRedis(this.config.redis, 'events', 'bullpen:worker:cancel');
    this.subscriber = subscriber;
    this.watch(subscriber);
    subscriber.on('message', (_channel: string, text: string) => this.onMessage(text));
    await subscriber.subscribe(cancelChannel(this.config.prefix));
  }

  async close(): Promise<void> {
    const subscriber = this.subscriber;
    this.subscriber = undefined;
    if (!subscriber) return;
    try {
      await subscriber.quit();
    } catch {
      subscriber.disconnect();
    }
  }

  private onMessage(text: string): void {
    let parsed: CancelMessage;
    try {
      parsed = cancelMessageSchema.parse(JSON.parse(text));
    } catch (err) {
      this.logger.warn('ignored a malformed cancel message', { error: (err as Error).message });
      return;
    }
    const cancelled = this.cancelJob(parsed);
    if (cancelled) this.logger.debug('cancelled an active job', { lane: parsed.lane, jobId: parsed.jobId });
  }
}
