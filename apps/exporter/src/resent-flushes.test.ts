import { LANE_EVENT, type CompletedAttemptsEvent, type DecodedLaneEvent } from '@bullpen/core';
import { ResentFlushes } from './resent-flushes';

const row = (jobId: string) => ({ jobId, name: 'n', tenant: '', attempt: 1, runMs: 1, waitMs: 1 });
const entry = (writer: string, seq: number, ...jobIds: string[]): CompletedAttemptsEvent => ({
  event: LANE_EVENT.completedAttempts,
  worker: 'w',
  attempts: jobIds.map(row),
  flush: { writer, seq },
});
const rows = (events: readonly DecodedLaneEvent[]) => events.flatMap((ev) => (ev.event === LANE_EVENT.completedAttempts ? ev.attempts.map((r) => r.jobId) : []));

describe('ResentFlushes', () => {
  it('counts a copy of an entry once, within a batch and across committed batches', () => {
    const resent = new ResentFlushes();
    const first = resent.screen([entry('a', 1, 'j1'), entry('a', 1, 'j1'), entry('b', 1, 'j2')]);
    expect(rows(first.events)).toEqual(['j1', 'j2']);
    expect(first.resent).toBe(1);
    resent.adopt(first.seen);
    const next = resent.screen([entry('a', 1, 'j1'), entry('a', 2, 'j3')]);
    expect(rows(next.events)).toEqual(['j3']);
  });

  it('forgets nothing of a batch whose commit failed: screened again, it counts the same', () => {
    const resent = new ResentFlushes();
    const batch = [entry('a', 1, 'j1'), entry('a', 2, 'j2')];
    resent.screen(batch);
    expect(rows(resent.screen(batch).events)).toEqual(['j1', 'j2']);
  });

  it('counts entries without a token (older workers) as they are', () => {
    const resent = new ResentFlushes();
    const { flush: _flush, ...old } = entry('a', 1, 'j1');
    expect(rows(resent.screen([old, old]).events)).toEqual(['j1', 'j1']);
  });

  it('forgets the writers seen least recently beyond its bound', () => {
    const resent = new ResentFlushes(2);
    for (const writer of ['a', 'b', 'c']) resent.adopt(resent.screen([entry(writer, 5, writer)]).seen);
    expect(rows(resent.screen([entry('a', 5, 'a'), entry('c', 5, 'c')]).events)).toEqual(['a']);
  });
});
