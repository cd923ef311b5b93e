// Reads a JSON request body: 415 for another content type, 413 past the limit, 400 for bad JSON
// (the error handler maps body-parser's error types). Mounted after auth and lane checks, so a
// body is never read for a request that is refused anyway.
import { isUtf8 } from 'node:buffer';
import express, { type RequestHandler, type Response } from 'express';
import { EMPTY_BODY, INVALID_UTF8, ProblemError, bodyRequiredProblem } from './problem';

const JSON_TYPES = ['application/json', 'application/*+json'];

export function jsonBody(limitBytes: number): RequestHandler[] {
  const requireJson: RequestHandler = (req, _res, next) => {
    const type = req.is(JSON_TYPES);
    const noBody = type === null || (req.headers['content-length'] === '0' && !req.headers['content-type']);
    if (noBody) {
      next(bodyRequiredProblem());
      return;
    }
    if (type === false) {
      const got = req.headers['content-type'] ?? 'none';
      next(new ProblemError('unsupported_media_type', `Expected Content-Type: application/json, got ${got}`));
      return;
    }
    // JSON between systems is UTF-8 (RFC 8259). body-parser would decode any utf-* charset, and
    // UTF-16's unpaired surrogates become U+FFFD as invalid UTF-8 would: refused alike.
    const charset = charsetOf(req.headers['content-type']);
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
      next(new ProblemError('unsupported_media_type', `Unsupported charset ${charset}; send UTF-8 JSON`));
      return;
    }
    next();
  };
  // strict: false lets any JSON value through, so that `"x"` is a schema error, not malformed JSON.
  // body-parser reads an empty body as {}, which a redrive or purge takes for "all": an empty body
  // is refused as missing, however it was framed (Content-Length: 0, no chunks, compressed to
  // nothing). Bytes that are not UTF-8 would be decoded to U+FFFD, so that two different
  // idempotency keys could arrive as the same string: such a body is refused instead. The error
  // handler maps both types.
  const parse = express.json({
    limit: limitBytes,
    strict: false,
    type: () => true,
    verify: (_req, res, buf, encoding) => {
      (res as Response).locals[BODY_BYTES] = buf.length;
      if (buf.length === 0) throw Object.assign(new Error('request body is empty'), { type: EMPTY_BODY, status: 400 });
      if (encoding === 'utf-8' && !isUtf8(buf)) throw Object.assign(new Error('request body is not UTF-8'), { type: INVALID_UTF8, status: 400 });
    },
  });
  return [requireJson, parse];
}

/** The charset parameter of a Content-Type, lower-cased; undefined when it has none. */
function charsetOf(contentType: string | undefined): string | undefined {
  const match = contentType ? /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(contentType) : null;
  return match ? (match[1] ?? '').toLowerCase() : undefined;
}

const BODY_BYTES = 'bodyBytes';

/** The length of the request body jsonBody read (decompressed), 0 when it read none. */
export function bodyBytesOf(res: Response): number {
  const bytes: unknown = res.locals[BODY_BYTES];
  return typeof bytes === 'number' ? bytes : 0;
}
