import type { Request, Response } from 'express';
import { loadConfig, reloadApiKeys } from '@bullpen/core';
import { authenticate, type Principal } from './auth';
import { ApiKeyTable } from './key-table';

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
    const middleware = authenticate(config, new ApiKeyTable(config));
    const first = run(middleware, 'Bearer acme-key-0001');
    const second = run(middleware, 'Bearer acme-key-0001');
    expect(first.principal).toEqual({ tenant: 'acme', operator: false });
    expect(second.principal).toBe(first.principal);
    expect(run(middleware, 'Bearer beta-key-0001').principal).toEqual({ tenant: 'beta', operator: false });
  });

  it('still refuses wrong keys, however often they are sent, after valid keys were seen', () => {
    const middleware = authenticate(config, new ApiKeyTable(config));
    run(middleware, 'Bearer acme-key-0001');
    for (let i = 0; i < 3; i++) {
      const wrong = run(middleware, `Bearer acme-key-000${i + 2}`);
      expect(wrong.principal).toBeUndefined();
      expect(wrong.error?.code).toBe('unauthorized');
    }
  });

  it('refuses a key proven valid before its keys were replaced, and accepts the new ones', () => {
    const fileConfig = loadConfig(
      { REDIS_URL: 'redis://127.0.0.1:6379', API_KEYS_FILE: '/keys.txt' },
      { readFile: (file) => (file === '/keys.txt' ? 'acme:acme-key-0001\n' : require('node:fs').readFileSync(file, 'utf8')) },
    );
    const keys = new ApiKeyTable(fileConfig);
    const middleware = authenticate(fileConfig, keys);
    expect(run(middleware, 'Bearer acme-key-0001').principal).toEqual({ tenant: 'acme', operator: true });

    const rotated = reloadApiKeys(fileConfig, { readFile: () => 'acme:acme-key-0002\nbeta:beta-key-0001\n' });
    keys.replace(rotated ?? []);
    expect(run(middleware, 'Bearer acme-key-0001').error?.code).toBe('unauthorized');
    // Two tenants now, and API_OPERATOR_TENANTS unset: neither operates lanes.
    expect(run(middleware, 'Bearer acme-key-0002').principal).toEqual({ tenant: 'acme', operator: false });
    expect(run(middleware, 'Bearer beta-key-0001').principal).toEqual({ tenant: 'beta', operator: false });
  });
});
