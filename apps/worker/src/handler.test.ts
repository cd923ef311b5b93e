import { PermanentError } from '@bullpen/core';
import { z } from 'zod';
import { defineHandler, isHandler } from './handler';
import { builtinHandlers, failHandler, httpHandler, noopHandler, sleepHandler, cpuHandler } from './handlers';
import { parseRetryAfter } from './handlers/http';

function rejection(fn: () => unknown): PermanentError {
  try {
    fn();
  } catch (err) {
    if (err instanceof PermanentError) return err;
    throw err;
  }
  throw new Error('expected a PermanentError');
}

describe('defineHandler', () => {
  it('checks the payload against the schema and names each bad field in a permanent validation error', () => {
    const handler = defineHandler({
      name: 'resize',
      payload: z.object({ width: z.number(), format: z.enum(['png', 'jpg']) }),
      run: (data) => data.width,
    });
    expect(handler.parse({ width: 3, format: 'png' })).toEqual({ width: 3, format: 'png' });
    const err = rejection(() => handler.parse({ width: 'wide', format: 'gif' }));
    expect(err.errorClass).toBe('validation');
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/^invalid payload for job "resize": /);
    expect(err.message).toMatch(/field "width": .*expected number/);
    expect(err.message).toMatch(/field "format"/);
  });

  it('passes the payload through unchecked when no schema is given', () => {
    const handler = defineHandler({ name: 'raw', run: (data) => data });
    expect(handler.parse('anything')).toBe('anything');
    expect(isHandler(handler)).toBe(true);
    expect(isHandler({ name: 'raw', run: () => 1 })).toBe(false);
  });

  it('rejects a name that cannot be a job name', () => {
    expect(() => defineHandler({ name: 'has space', run: () => 1 })).toThrow(/name must match/);
  });
});

describe('built-in handler payloads', () => {
  it('registers the five built-ins under their names', () => {
    expect(builtinHandlers().map((h) => h.name)).toEqual(['noop', 'sleep', 'cpu', 'fail', 'http']);
  });

  it.each([
    ['noop', () => noopHandler.parse({ extra: 1 }), /Unrecognized key: "extra"/],
    ['sleep', () => sleepHandler.parse({}), /field "ms": .*expected number/],
    ['sleep', () => sleepHandler.parse({ ms: -5 }), /field "ms"/],
    ['cpu', () => cpuHandler.parse({ ms: 'fast' }), /field "ms": .*expected number/],
    ['fail', () => failHandler.parse({ kind: 'explode' }), /field "kind"/],
    ['fail', () => failHandler.parse({ kind: 'retryable', succeedOnAttempt: 0 }), /field "succeedOnAttempt"/],
    ['http', () => httpHandler.parse({ url: 'ftp://example.com/' }), /field "url": expected an http:\/\/ or https:\/\/ URL/],
    ['http', () => httpHandler.parse({ url: 'http://x/', method: 'GET', body: 'x' }), /field "body": expected no body with GET or HEAD/],
    ['http', () => httpHandler.parse({ url: 'http://x/', headers: { a: 1 } }), /field "headers.a"/],
  ])('fails a bad %s payload permanently, naming the field', (_name, parse, reason) => {
    const err = rejection(parse);
    expect(err.errorClass).toBe('validation');
    expect(err.message).toMatch(reason);
  });

  it('accepts good payloads and applies defaults', () => {
    expect(noopHandler.parse(undefined)).toBeUndefined();
    expect(sleepHandler.parse({ ms: 10 })).toEqual({ ms: 10 });
    expect(httpHandler.parse({ url: 'https://example.com/a' })).toMatchObject({ method: 'GET' });
  });
});

describe('parseRetryAfter', () => {
  it('reads delay-seconds and HTTP dates and ignores nonsense', () => {
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:10 GMT', now)).toBe(10_000);
    expect(parseRetryAfter('Tue, 31 Dec 2024 00:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('soon', now)).toBeUndefined();
    expect(parseRetryAfter(null, now)).toBeUndefined();
  });
});
