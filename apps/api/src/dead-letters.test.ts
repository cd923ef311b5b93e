import { freshDeadline } from './dead-letter-redrive';

describe('freshDeadline', () => {
  const job = { timestamp: 1_000 };
  const meta = { v: 1 as const, tenant: 'acme' };

  it('gives the job as long from now as it first had from its enqueue', () => {
    expect(freshDeadline(job, { ...meta, deadlineAt: 61_000 }, {}, 500_000)).toBe(560_000);
    // The lane's deadline does not override the job's own.
    expect(freshDeadline(job, { ...meta, deadlineAt: 61_000 }, { deadlineMs: 5_000 }, 500_000)).toBe(560_000);
  });

  it('gives a job redriven again the same budget, not one grown by the time since its enqueue', () => {
    // Enqueued at 1 s with 60 s; redriven at 500 s, so due at 560 s; dead again, redriven at 900 s.
    const redriven = { ...meta, deadlineAt: 560_000, redrivenAt: 500_000 };
    expect(freshDeadline(job, redriven, {}, 900_000)).toBe(960_000);
    // A lane deadline given at the first redrive stays the lane's length too.
    expect(freshDeadline(job, { ...meta, deadlineAt: 505_000, redrivenAt: 500_000 }, { deadlineMs: 5_000 }, 900_000)).toBe(905_000);
  });

  it("gives a job without its own deadline the lane's, counted from now", () => {
    expect(freshDeadline(job, meta, { deadlineMs: 5_000 }, 500_000)).toBe(505_000);
  });

  it('leaves jobs without a deadline, or without an envelope, as they are', () => {
    expect(freshDeadline(job, meta, {}, 500_000)).toBeUndefined();
    expect(freshDeadline(job, undefined, { deadlineMs: 5_000 }, 500_000)).toBeUndefined();
  });
});
