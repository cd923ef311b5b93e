import { decodeLaneEvent, encodeLaneEvent, LANE_EVENT, type LifecycleLine } from '@bullpen/core';
import { EventLogFeed } from './event-log-feed';

const completed = decodeLaneEvent(
  encodeLaneEvent({ event: LANE_EVENT.attempt, jobId: '1', name: 'noop', tenant: 'acme', attempt: 1, outcome: 'completed', willRetry: false, runMs: 3, waitMs: 1, worker: 'w' }),
);

/** A log whose writes finish only when told to. */
function stuckLog() {
  const lines: LifecycleLine[] = [];
  const pending: Array<() => void> = [];
  return {
    lines,
    pendingWrites: () => pending.length,
    finish: () => pending.splice(0).forEach((done) => done()),
    write: (line: LifecycleLine) => void lines.push(line),
    flush: () => new Promise<void>((resolve) => pending.push(resolve)),
  };
}

describe('EventLogFeed', () => {
  it('queues the lines of each entry and waits for them to be written', async () => {
    const log = stuckLog();
    const feed = new EventLogFeed(log, 60_000);
    feed.append('a', [['5-0', completed]]);
    expect(log.lines.map((l) => l.event)).toEqual(['lease_created', 'completed']);
    let written = false;
    const done = feed.written().then(() => (written = true));
    await Promise.resolve();
    expect(written).toBe(false);
    log.finish();
    await done;
    expect(written).toBe(true);
  });

  it('stops waiting for a disk that does not answer, and does not wait again until it has', async () => {
    const log = stuckLog();
    const feed = new EventLogFeed(log, 20);
    await feed.written(); // resolves after its 20 ms bound, the write still pending
    expect(log.pendingWrites()).toBe(1);
    await feed.written(); // at once: no new write is started behind the stuck one
    expect(log.pendingWrites()).toBe(1);
    log.finish();
    await new Promise((resolve) => setImmediate(resolve));
    const next = feed.written(); // the disk answered: writes are waited for again
    expect(log.pendingWrites()).toBe(1);
    log.finish();
    await next;
  });
});
