import { ReplyError } from 'ioredis';
import { redisFailed } from './dead-letter-problems';
import { ProblemError } from './problem';

describe('redisFailed', () => {
  const readOnly = () => new ReplyError("READONLY You can't write against a read only replica.");

  it('answers a batch Redis refused a write of partway as outcome unknown, not as untouched', () => {
    const err = redisFailed('redrive', readOnly(), 3, [], undefined);
    expect(err).toBeInstanceOf(ProblemError);
    const problem = (err as ProblemError).toProblem();
    expect(problem.code).toBe('redis_timeout');
    expect(problem.detail).toMatch(/its 3 dead letters may or may not have been redriven/);
  });

  it('keeps the refusal its own code when nothing after the results was touched', () => {
    const problem = (redisFailed('purge', readOnly(), 0, [], 1_700_000_000_000) as ProblemError).toProblem();
    expect([problem.code, problem.failedBefore]).toEqual(['redis_unavailable', 1_700_000_000_000]);
  });
});
