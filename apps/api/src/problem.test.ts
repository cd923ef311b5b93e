import { UnavailableError } from '@bullpen/core';
import { EMPTY_BODY, ProblemError, toProblemError, writeOutcomeUnknown } from './problem';
import { RedisConnectionLostError } from './redis-guard';

const bodyParserError = (type: string) => Object.assign(new Error('whatever the message says'), { type });

describe('toProblemError', () => {
  it("maps body-parser's error types to their problems", () => {
    expect(toProblemError(bodyParserError('entity.parse.failed'), 1024)?.code).toBe('malformed_json');
    expect(toProblemError(bodyParserError('entity.too.large'), 1024)?.toProblem()).toMatchObject({
      status: 413,
      code: 'payload_too_large',
      detail: 'The request body exceeds 1024 bytes',
    });
    expect(toProblemError(bodyParserError('charset.unsupported'), 1024)?.status).toBe(415);
    expect(toProblemError(bodyParserError('encoding.unsupported'), 1024)?.status).toBe(415);
    // body.ts's own: an empty body is a missing one, not the {} body-parser would make of it.
    expect(toProblemError(bodyParserError(EMPTY_BODY), 1024)?.toProblem()).toMatchObject({
      status: 400,
      code: 'validation_failed',
      errors: [{ field: 'body', message: 'required' }],
    });
  });

  it('answers an outage with 503 and Retry-After', () => {
    const problem = toProblemError(new UnavailableError('down'), 1024);
    expect(problem?.toProblem()).toMatchObject({ status: 503, code: 'redis_unavailable', detail: 'down' });
    expect(problem?.options.headers).toEqual({ 'Retry-After': '1' });
  });

  it('says a cancel, redrive or purge sent but not answered may or may not have been done', () => {
    const unknown = writeOutcomeUnknown(new RedisConnectionLostError('lost'), 'the removal of job j1');
    expect(unknown).toBeInstanceOf(ProblemError);
    expect((unknown as ProblemError).toProblem()).toMatchObject({ status: 503, code: 'redis_timeout' });
    expect((unknown as ProblemError).toProblem().detail).toMatch(/the removal of job j1 may or may not have been done/);
    // Down before anything was sent: still the plain outage.
    const down = new UnavailableError('Redis is reconnecting');
    expect(writeOutcomeUnknown(down, 'x')).toBe(down);
  });

  it('leaves unexpected errors to be answered as a 500', () => {
    expect(toProblemError(new TypeError('bug'), 1024)).toBeUndefined();
  });
});

describe('ProblemError', () => {
  it('renders RFC 9457 fields plus the stable code and field errors', () => {
    const error = new ProblemError('validation_failed', 'The job is invalid', { errors: [{ field: 'body.name', message: 'required' }] });
    expect(error.toProblem()).toEqual({
      type: 'urn:bullpen:problem:validation_failed',
      title: 'Validation failed',
      status: 400,
      code: 'validation_failed',
      detail: 'The job is invalid',
      errors: [{ field: 'body.name', message: 'required' }],
    });
  });
});
