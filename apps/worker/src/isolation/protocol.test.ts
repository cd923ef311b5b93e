import { CancelledError, PermanentError, RateLimitedError, RetryableError, TimeoutError, classifyError } from '@bullpen/core';
import { deserializeError, serializeError } from './protocol';

const roundTrip = (err: unknown) => deserializeError(structuredClone(serializeError(err)));

describe('errors crossing a thread boundary', () => {
  it('keep the class of a subclass of a bullpen error, and an HTTP client\'s response status', () => {
    class NotFoundError extends PermanentError {
      constructor(message: string) {
        super(message, 'validation');
        Object.defineProperty(this, 'name', { value: 'NotFoundError' });
      }
    }
    class FlakyUpstream extends RetryableError {}
    const http404 = Object.assign(new Error('Request failed with status code 404'), { response: { status: 404 } });
    for (const err of [new NotFoundError('no such order'), new FlakyUpstream('reset', 'network'), http404]) {
      const back = roundTrip(err);
      expect({ name: back.name, class: classifyError(back) }).toEqual({ name: err.name, class: classifyError(err) });
    }
    expect(roundTrip(new NotFoundError('x'))).toBeInstanceOf(PermanentError);
  });

  it('come back as the bullpen error class they were, so they classify the same', () => {
    const errors: unknown[] = [
      new PermanentError('bad', 'validation'),
      new RetryableError('flaky', 'http_5xx'),
      new RateLimitedError('slow down', 1500),
      new TimeoutError('late'),
      new CancelledError('stop'),
      Object.assign(new Error('reset'), { code: 'ECONNRESET' }),
      Object.assign(new Error('not found'), { status: 404 }),
      'a string',
    ];
    for (const err of errors) {
      const back = roundTrip(err);
      expect(classifyError(back)).toEqual(classifyError(err));
      expect(back.message).toBe(err instanceof Error ? err.message : 'a string');
    }
    expect(roundTrip(new RateLimitedError('x', 20))).toBeInstanceOf(RateLimitedError);
  });
});
