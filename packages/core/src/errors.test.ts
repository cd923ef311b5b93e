import net from 'node:net';
import { classifyError, ConfigError, errorCodeOf, listenFailure, PermanentError, RateLimitedError, RetryableError, TimeoutError } from './errors';

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

  describe("an error that wraps the one saying what happened (its cause)", () => {
    it('classifies by the code or status of its cause when it has none of its own', () => {
      const refused = new TypeError('fetch failed', { cause: Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }) });
      expect(classifyError(refused)).toEqual({ errorClass: 'network', retryable: true });
      expect(classifyError(new Error('call failed', { cause: { status: 404 } }))).toEqual({ errorClass: 'http_4xx', retryable: false });
      // Two levels down, as a client wrapping fetch's own error would throw it.
      expect(classifyError(new Error('sync failed', { cause: refused }))).toEqual({ errorClass: 'network', retryable: true });
    });

    it("matches a lane's errorRules on the code of the cause", () => {
      const refused = new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } });
      expect(classifyError(refused, [{ code: 'ECONNREFUSED', retryable: false, errorClass: 'network' }])).toEqual({
        errorClass: 'network',
        retryable: false,
      });
    });

    it('prefers the code of the error itself to that of its cause', () => {
      const err = Object.assign(new Error('x', { cause: { code: 'ECONNRESET' } }), { code: 'E_OWN' });
      expect(errorCodeOf(err)).toBe('E_OWN');
    });

    it('looks three causes deep at most, and stops at a cycle', () => {
      const chain = (depth: number): unknown => (depth === 0 ? { code: 'ECONNRESET' } : new Error(`level ${depth}`, { cause: chain(depth - 1) }));
      expect(errorCodeOf(chain(3))).toBe('ECONNRESET');
      expect(errorCodeOf(chain(4))).toBeUndefined();
      const a = new Error('a');
      const b = new Error('b', { cause: a });
      (a as Error & { cause?: unknown }).cause = b;
      expect(classifyError(a)).toEqual({ errorClass: 'handler', retryable: true });
    });

    it("classifies the refused connection of Node's own fetch as a retryable network error", async () => {
      const server = net.createServer();
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as net.AddressInfo;
      await new Promise((resolve) => server.close(resolve));
      const thrown = await fetch(`http://127.0.0.1:${port}/`).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect((thrown as Error).message).toBe('fetch failed');
      expect(classifyError(thrown)).toEqual({ errorClass: 'network', retryable: true });
    });
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
