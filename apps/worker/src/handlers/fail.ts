// `fail` {kind, message?, retryAfterMs?, succeedOnAttempt?}: fails with the given kind of error, or
// succeeds from attempt succeedOnAttempt on. For demos and tests of the retry machinery.
import { PermanentError, RateLimitedError, RetryableError, TimeoutError } from '@bullpen/core';
import { z } from 'zod';
import { defineHandler } from '../handler';

export const FAIL_KINDS = ['permanent', 'retryable', 'timeout', 'rate_limited'] as const;

export const failHandler = defineHandler({
  name: 'fail',
  payload: z
    .object({
      kind: z.enum(FAIL_KINDS),
      message: z.string().max(2000).optional(),
      retryAfterMs: z.number().int().min(0).optional(),
      succeedOnAttempt: z.number().int().min(1).optional(),
    })
    .strict(),
  run: ({ kind, message, retryAfterMs, succeedOnAttempt }, { attempt }) => {
    if (succeedOnAttempt !== undefined && attempt >= succeedOnAttempt) return { succeededOnAttempt: attempt };
    const text = message ?? `fail handler: ${kind} failure on attempt ${attempt}`;
    switch (kind) {
      case 'permanent':
        throw new PermanentError(text);
      case 'retryable':
        throw new RetryableError(text);
      case 'timeout':
        throw new TimeoutError(text);
      case 'rate_limited':
        throw new RateLimitedError(text, retryAfterMs);
    }
  },
});
