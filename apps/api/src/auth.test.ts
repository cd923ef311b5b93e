import type { Request, Response } from 'express';
import { loadConfig } from '@bullpen/core';
import { authenticate, type Principal } from './auth';

const config = loadConfig({ REDIS_URL: 'redis://127.0.0.1:6379', API_KEYS: 'acme:acme-key-0001,beta:beta-key-0001' });

/** Runs the middleware for one Authorization header: the principal it set, or the error it passed on. */
function run(middleware: ReturnType<typeof authenticate>, authorization: string): { principal?: Principal; error?: { code?: string } } {
  const res = { locals: {} as Record<string, unknown> } as unknown as Response;
  let error: { code?: string } | undefined;
  middleware({ headers: { authorization } } as Request, res, (err?: unknown) => {
    error = err as { code?: string } | undefined;
  });
  return { principal: res.locals.principal as Principal | undefined, error };
}

describe('authenticate', () => {
  it('proves a key once and answers its later requests with the same principal', () => {
    const middleware = authenticate(config);
    const first = run(middleware, 'Bearer acme-key-0001');
    const second = run(middleware, 'Bearer acme-key-0001');
    expect(first.principal).toEqual({ tenant: 'acme' });
    expect(second.principal).toBe(first.principal);
    expect(run(middleware, 'Bearer beta-key-0001').principal).toEqual({ tenant: 'beta' });
  });

  it('still refuses wrong keys, however often they are sent, after valid keys were seen', () => {
    const middleware = authenticate(config);
    run(middleware, 'Bearer acme-key-0001');
    for (let i = 0; i < 3; i++) {
      const wrong = run(middleware, `Bearer acme-key-000${i + 2}`);
      expect(wrong.principal).toBeUndefined();
      expect(wrong.error?.code).toBe('unauthorized');
    }
  });
});
