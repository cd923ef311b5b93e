import { Writable } from 'node:stream';
import winston from 'winston';
import { loadConfig } from './config';
import { createLogger, redact } from './logger';

function capture(level: 'info' | 'debug' = 'info') {
  const lines: string[] = [];
  const logger = createLogger('api', level);
  logger.clear();
  logger.add(
    new winston.transports.Stream({
      stream: new Writable({
        write(chunk, _enc, done) {
          lines.push(String(chunk));
          done();
        },
      }),
    }),
  );
  return { logger, lines };
}

describe('logger', () => {
  it('writes one JSON object per line with ts, level, service and msg', () => {
    const { logger, lines } = capture();
    logger.info('job accepted', { lane: 'critic', job_id: '7', attempt: 1 });
    logger.debug('not at info');
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0] ?? '{}');
    expect(line).toEqual({ ts: expect.any(String), level: 'info', service: 'api', msg: 'job accepted', lane: 'critic', job_id: '7', attempt: 1 });
    expect(Number.isNaN(Date.parse(line.ts))).toBe(false);
  });

  it('redacts configured keys at any depth', () => {
    const keys = new Set(['password', 'token']);
    expect(redact({ user: 'a', Password: 'p', nested: [{ token: 't', ok: 1 }] }, keys)).toEqual({
      user: 'a',
      Password: '[redacted]',
      nested: [{ token: '[redacted]', ok: 1 }],
    });
    // As deep as job data may nest, and past it nothing shows unredacted.
    const nest = (levels: number): unknown => (levels === 0 ? { password: 'DEEP' } : { inner: nest(levels - 1) });
    expect(JSON.stringify(redact(nest(60), keys))).not.toContain('DEEP');
    expect(JSON.stringify(redact(nest(60), keys))).toContain('[redacted]');
    expect(JSON.stringify(redact(nest(200), keys))).not.toContain('DEEP');
  });

  it('redacts keys that contain a configured key, whatever their case and punctuation', () => {
    const keys = loadConfig({}).logRedactKeys;
    const payload = {
      user: 'ann',
      access_token: 'a1',
      refreshToken: 'r1',
      client_secret: 's1',
      'api-key': 'k1',
      'X-Api-Key': 'k2',
      headers: { Cookie: 'c1', Authorization: 'Bearer b1' },
      aws: { credentials: { id: 'i1' } },
      db_password_hash: 'h1',
    };
    const shown = JSON.stringify(redact(payload, keys));
    for (const secret of ['a1', 'r1', 's1', 'k1', 'k2', 'c1', 'b1', 'i1', 'h1']) expect(shown).not.toContain(`"${secret}"`);
    expect(shown).toContain('"ann"');
    // Empty means the default, as for every other variable; it does not turn redaction off.
    expect([...loadConfig({ LOG_REDACT_KEYS: '' }).logRedactKeys]).toEqual([...keys]);
    expect(redact({ session_id: 'x', sessionId: 'y' }, loadConfig({ LOG_REDACT_KEYS: 'Session-ID' }).logRedactKeys)).toEqual({
      session_id: '[redacted]',
      sessionId: '[redacted]',
    });
  });
});
