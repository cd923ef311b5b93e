import { JobsInFlight } from './jobs-in-flight';
import { ProblemError } from './problem';

/** Settles `promise` into a plain record, so that tests can look at it before and after. */
function track(promise: Promise<void>): { state: 'pending' | 'entered' | 'refused'; error?: unknown } {
  const record: { state: 'pending' | 'entered' | 'refused'; error?: unknown } = { state: 'pending' };
  promise.then(
    () => (record.state = 'entered'),
    (error: unknown) => Object.assign(record, { state: 'refused', error }),
  );
  return record;
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('JobsInFlight', () => {
  it('lets jobs in while they fit and holds the rest until room is given back', async () => {
    const inFlight = new JobsInFlight(10, 60_000);
    expect(inFlight.tryEnter(6)).toBe(true);
    expect(inFlight.tryEnter(4)).toBe(true);
    expect(inFlight.tryEnter(1)).toBe(false);
    const waiting = track(inFlight.enter(3));
    await settle();
    expect(waiting.state).toBe('pending');
    expect(inFlight.queued).toBe(1);

    inFlight.leave(4);
    await settle();
    expect(waiting.state).toBe('entered');
    expect(inFlight.current).toBe(9);
  });

  it('lets waiters in oldest first, and no later one past a waiting larger one', async () => {
    const inFlight = new JobsInFlight(10, 60_000);
    expect(inFlight.tryEnter(10)).toBe(true);
    const big = track(inFlight.enter(8));
    const small = track(inFlight.enter(1));
    // Room for the small one now, but the big one came first: neither enters yet.
    inFlight.leave(5);
    await settle();
    expect([big.state, small.state]).toEqual(['pending', 'pending']);
    expect(inFlight.tryEnter(1)).toBe(false);

    inFlight.leave(5);
    await settle();
    expect([big.state, small.state]).toEqual(['entered', 'entered']);
    expect(inFlight.current).toBe(9);
  });

  it('refuses with api_overloaded, nothing sent, once a waiter has waited maxWaitMs', async () => {
    const inFlight = new JobsInFlight(2, 30);
    expect(inFlight.tryEnter(2)).toBe(true);
    const started = Date.now();
    const err = await inFlight.enter(5).catch((e: unknown) => e);
    expect(Date.now() - started).toBeGreaterThanOrEqual(25);
    expect(err).toBeInstanceOf(ProblemError);
    const problem = (err as ProblemError).toProblem();
    expect(problem).toMatchObject({ status: 503, code: 'api_overloaded' });
    expect(problem.detail).toMatch(/The 5 jobs were not enqueued/);
    expect(problem.jobIds).toBeUndefined();
    expect((err as ProblemError).options.headers).toEqual({ 'Retry-After': '1' });
    expect(inFlight.queued).toBe(0);
    expect(inFlight.current).toBe(2);
  });

  it('refuses at once with a wait of 0 when there is no room', async () => {
    const inFlight = new JobsInFlight(1, 0);
    expect(inFlight.tryEnter(1)).toBe(true);
    const err = await inFlight.enter(1).catch((e: unknown) => e);
    expect((err as ProblemError).code).toBe('api_overloaded');
    inFlight.leave(1);
    await expect(inFlight.enter(1)).resolves.toBeUndefined();
  });

  it('lets the ones behind a refused waiter in when it was what held them back', async () => {
    const inFlight = new JobsInFlight(10, 20);
    expect(inFlight.tryEnter(6)).toBe(true);
    // A big waiter, first in line, that gives up; behind it a small one that fits meanwhile.
    const big = inFlight.enter(8);
    const small = track(inFlight.enter(3));
    await settle();
    expect(small.state).toBe('pending');
    await expect(big).rejects.toMatchObject({ code: 'api_overloaded' });
    await settle();
    expect(small.state).toBe('entered');
    expect(inFlight.current).toBe(9);
  });

  it('counts a submission larger than the limit as the whole limit, so that it goes alone', async () => {
    const inFlight = new JobsInFlight(100, 60_000);
    expect(inFlight.tryEnter(1000)).toBe(true);
    expect(inFlight.current).toBe(100);
    expect(inFlight.tryEnter(1)).toBe(false);
    inFlight.leave(1000);
    expect(inFlight.current).toBe(0);
    expect(inFlight.tryEnter(1)).toBe(true);
  });
});
