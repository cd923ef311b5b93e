import { CancelledError, PermanentError, RateLimitedError, RetryableError, TimeoutError, classifyError, describeThrown } from '@bullpen/core';
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

  it('carry what classifies a thrown value that is not an Error, and describe it as the attempt would', () => {
    const rules = [{ code: 'E_QUOTA', retryable: false, errorClass: 'validation' as const }];
    const values: unknown[] = [
      { status: 404 },
      { statusCode: 503 },
      { response: { status: 429 } },
      { code: 'ECONNRESET' },
      { message: 'obj', code: 'E_QUOTA' },
      { name: 'AbortError' },
      // A field that is not a number still hides the next one from `status ?? statusCode`.
      { status: { text: 'n/a' }, statusCode: 503 },
      Object.assign(Object.create(null) as object, { status: 503 }),
    ];
    for (const value of values) {
      const back = roundTrip(value);
      expect(classifyError(back, rules)).toEqual(classifyError(value, rules));
      expect(describeThrown(back)).toBe(describeThrown(value));
    }
  });

  it('never throw, whatever was thrown', () => {
    const throwingGetter = Object.defineProperty({}, 'status', {
      get() {
        throw new Error('no');
      },
    });
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    for (const value of [throwingGetter, proxy, Object.create(null), Symbol('s'), 10n]) {
      expect(() => roundTrip(value)).not.toThrow();
    }
  });

  it('carry the chain of causes, a cycle cut short', () => {
    const root = Object.assign(new Error('connect failed'), { code: 'ECONNREFUSED' });
    const err = new Error('fetch failed', { cause: root });
    (root as Error & { cause?: unknown }).cause = err;
    const back = roundTrip(err);
    expect(back.cause).toBeInstanceOf(Error);
    expect(back.cause).toMatchObject({ message: 'connect failed', code: 'ECONNREFUSED' });
    expect((back.cause as Error).cause).toBeUndefined();
  });
});
