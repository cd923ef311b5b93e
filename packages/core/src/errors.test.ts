import { classifyError, ConfigError, listenFailure, PermanentError, RateLimitedError, RetryableError, TimeoutError } from './errors';

describe('classifyError', () => {
  it('classifies typed errors by their class', () => {
    expect(classifyError(new PermanentError('bad'))).toEqual({ errorClass: 'handler', retryable: false });
    expect(classifyError(new RetryableError('again', 'network'))).toEqual({ errorClass: 'network', retryable: true });
    expect(classifyError(new TimeoutError('slow'))).toEqual({ errorClass: 'timeout', retryable: true });
    expect(classifyError(new RateLimitedError('slow down', 1500))).toEqual({
      errorClass: 'rate_limited',
      retryable: true,
      retryAfterMs: 1500,
    });
  });

  it('treats network error codes as retryable', () => {
    for (const code of ['ECONNRESET', 'ETIMEDOUT', 'ECONNREFUSED', 'EAI_AGAIN']) {
      expect(classifyError(Object.assign(new Error('x'), { code }))).toEqual({ errorClass: 'network', retryable: true });
    }
  });

  it('retries 408, 429 and 5xx and fails other 4xx permanently', () => {
    expect(classifyError({ status: 503 })).toEqual({ errorClass: 'http_5xx', retryable: true });
    expect(classifyError({ statusCode: 429 })).toEqual({ errorClass: 'rate_limited', retryable: true });
    expect(classifyError({ response: { status: 408 } })).toEqual({ errorClass: 'timeout', retryable: true });
    expect(classifyError({ status: 404 })).toEqual({ errorClass: 'http_4xx', retryable: false });
  });

  it('lets per-lane rules override the defaults', () => {
    const rules = [
      { status: 404, retryable: true, errorClass: 'http_4xx' as const },
      { code: 'ECONNRESET', retryable: false },
    ];
    expect(classifyError({ status: 404 }, rules)).toEqual({ errorClass: 'http_4xx', retryable: true });
    expect(classifyError(Object.assign(new Error('x'), { code: 'ECONNRESET' }), rules).retryable).toBe(false);
  });

  it('never reads the message to decide', () => {
    expect(classifyError(new Error('ECONNRESET 404 timeout'))).toEqual({ errorClass: 'handler', retryable: true });
  });
});

describe('listenFailure', () => {
  const failure = (code: string) => Object.assign(new Error(`getaddrinfo ${code} nope.invalid`), { code, hostname: 'nope.invalid' });

  it('names HOST when its name does not resolve, whichever port variable the server listens on', () => {
    for (const code of ['ENOTFOUND', 'EAI_AGAIN']) {
      const err = listenFailure(failure(code), 'WORKER_METRICS_PORT', 9464, 'nope.invalid');
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(
        new RegExp(`^HOST: cannot listen on nope.invalid:9464 \\(WORKER_METRICS_PORT\\): "nope.invalid" .* \\(${code}\\); set HOST to`),
      );
    }
  });

  it('names the port variable when the port is taken, and returns other errors as they are', () => {
    expect((listenFailure(failure('EADDRINUSE'), 'PORT', 3000, '127.0.0.1') as Error).message).toBe(
      'PORT: cannot listen on 127.0.0.1:3000: it is in use by another process (EADDRINUSE); set PORT (or HOST) to another',
    );
    const other = failure('EIO');
    expect(listenFailure(other, 'PORT', 3000, '127.0.0.1')).toBe(other);
  });
});
