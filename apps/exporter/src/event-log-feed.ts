// Feeds the exporter's lifecycle event log (EVENT_LOG_FILE) from the batches it counts. A batch's
// lines are written before its position is committed, so a crash between the two writes them again
// after the restart (at least once; stream_id tells the copies apart) rather than losing them. The
// wait for the disk is bounded: a disk that does not answer delays counting once, by maxWaitMs,
// and is not waited for again until it has answered. Entries trimmed before they were read are
// said in an events_lost line.
import { eventsLostLine, type DecodedLaneEvent, type EventsLost, type LifecycleLog } from '@bullpen/core';
import { laneEventLines } from './lifecycle-lines';

export interface BatchLog {
  /** Queues the lines of one lane's entries; never throws. */
  append(lane: string, entries: ReadonlyArray<readonly [id: string, event: DecodedLaneEvent]>): void;
  /** Queues the events_lost line of entries trimmed before they were read; never throws. */
  lost(loss: EventsLost): void;
  /** Resolves once the queued lines are written (or dropped on error), or after a bounded wait. Never rejects. */
  written(): Promise<void>;
}

export class EventLogFeed implements BatchLog {
  /** A write that outlived its wait: until it settles, written() does not wait. */
  private slow: Promise<void> | undefined;

  constructor(
    private readonly log: Pick<LifecycleLog, 'write' | 'flush'>,
    /** Longest wait for one write; default 1000 ms. */
    private readonly maxWaitMs = 1000,
  ) {}

  append(lane: string, entries: ReadonlyArray<readonly [id: string, event: DecodedLaneEvent]>): void {
    for (const [id, event] of entries) {
      for (const line of laneEventLines(lane, id, event)) this.log.write(line);
    }
  }

  lost(loss: EventsLost): void {
    this.log.write(eventsLostLine(loss));
  }

  async written(): Promise<void> {
    if (this.slow) return;
    const write = this.log.flush();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(true), this.maxWaitMs);
    });
    const late = await Promise.race([write.then(() => false), timedOut]);
    clearTimeout(timer);
    if (late) {
      this.slow = write.finally(() => {
        this.slow = undefined;
      });
    }
  }
}
