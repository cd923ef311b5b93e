import { EarlyCancels } from './early-cancels';

describe('EarlyCancels', () => {
  function clocked(options: { ttlMs: number; maxEntries?: number }) {
    const clock = { now: 1_000_000 };
    return { clock, cancels: new EarlyCancels({ ...options, now: () => clock.now }) };
  }

  it('hands a kept cancellation to the first attempt of its job that asks, once', () => {
    const { cancels } = clocked({ ttlMs: 30_000 });
    cancels.note('job-1', 'cancel requested');
    expect(cancels.take('job-2', 0)).toBeUndefined();
    expect(cancels.take('job-1', 0)).toBe('cancel requested');
    expect(cancels.take('job-1', 0)).toBeUndefined();
    expect(cancels.size).toBe(0);
  });

  it('does not hand out a cancellation older than the run of the job that asks for it', () => {
    // A job cancelled while it ran elsewhere, then redriven and started here within the ttl: the
    // message was for the run that was cancelled.
    const { clock, cancels } = clocked({ ttlMs: 30_000 });
    cancels.note('job-1', 'cancel requested');
    const heardAt = clock.now;
    clock.now += 5000;
    expect(cancels.take('job-1', clock.now)).toBeUndefined();
    cancels.note('job-1', 'cancel requested');
    expect(cancels.take('job-1', heardAt + 5000)).toBe('cancel requested');
  });

  it('does not hand out a cancellation kept for longer than its ttl', () => {
    const { clock, cancels } = clocked({ ttlMs: 30_000 });
    cancels.note('job-1', 'cancel requested');
    clock.now += 30_000;
    expect(cancels.take('job-1', 0)).toBeUndefined();
    expect(cancels.size).toBe(0);
  });

  it('drops expired cancellations of jobs that never start here as new ones come', () => {
    const { clock, cancels } = clocked({ ttlMs: 1000 });
    for (let i = 0; i < 100; i += 1) cancels.note(`gone-${i}`, 'cancel requested');
    clock.now += 1000;
    cancels.note('job-1', 'cancel requested');
    expect(cancels.size).toBe(1);
    expect(cancels.take('job-1', 0)).toBe('cancel requested');
  });

  it('keeps at most maxEntries, dropping the oldest', () => {
    const { cancels } = clocked({ ttlMs: 30_000, maxEntries: 3 });
    for (const id of ['a', 'b', 'c', 'd']) cancels.note(id, 'cancel requested');
    expect(cancels.size).toBe(3);
    expect(cancels.take('a', 0)).toBeUndefined();
    expect(['b', 'c', 'd'].map((id) => cancels.take(id, 0))).toEqual(['cancel requested', 'cancel requested', 'cancel requested']);
  });

  it('counts a repeated cancellation of one job once, from its latest message', () => {
    const { clock, cancels } = clocked({ ttlMs: 1000, maxEntries: 2 });
    cancels.note('a', 'first');
    cancels.note('b', 'cancel requested');
    clock.now += 600;
    cancels.note('a', 'again');
    clock.now += 600;
    cancels.note('c', 'cancel requested');
    // b expired; a, renewed, did not.
    expect(cancels.size).toBe(2);
    expect(cancels.take('b', 0)).toBeUndefined();
    expect(cancels.take('a', 0)).toBe('again');
  });
});
