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

  it('masks the userinfo and the secret query values of URLs in string values, leaving the rest as it was', () => {
    const keys = loadConfig({}).logRedactKeys;
    const payload = {
      url: 'http://user:Pa55word@host.example/x?token=T0KEN&color=blue',
      signed: 'https://bucket.s3.amazonaws.com/k?X-Amz-Credential=CRED&X-Amz-Signature=AMZSIG&X-Amz-Expires=900',
      azure: 'https://acct.blob.core.windows.net/c/b?sv=2024&sig=AZSIG',
      gcs: 'https://storage.googleapis.com/b/o?X-Goog-Signature=GSIG&x-goog-date=1',
      v2: 'https://b.s3.amazonaws.com/k?AWSAccessKeyId=AKIA1&Signature=V2SIG&Expires=1',
      // A password with a "/" does not parse; what lies before the last "@" is masked all the same.
      broken: 'redis://:abc/Def+Secret=@10.0.0.5:6379',
      text: 'call http://svc:hunter2@10.0.0.7:8080/hook?api_key=K3Y and then stop',
      plain: 'no url here: user:pass',
      list: ['ftp://anon:ftpsecret@files.example/pub'],
      count: 3,
    };
    expect(redact(payload, keys)).toEqual({
      url: 'http://REDACTED:REDACTED@host.example/x?token=REDACTED&color=blue',
      signed: 'https://bucket.s3.amazonaws.com/k?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED&X-Amz-Expires=900',
      azure: 'https://acct.blob.core.windows.net/c/b?sv=2024&sig=REDACTED',
      gcs: 'https://storage.googleapis.com/b/o?X-Goog-Signature=REDACTED&x-goog-date=1',
      v2: 'https://b.s3.amazonaws.com/k?AWSAccessKeyId=REDACTED&Signature=REDACTED&Expires=1',
      broken: 'redis://REDACTED@10.0.0.5:6379',
      text: 'call http://REDACTED:REDACTED@10.0.0.7:8080/hook?api_key=REDACTED and then stop',
      plain: 'no url here: user:pass',
      list: ['ftp://REDACTED:REDACTED@files.example/pub'],
      count: 3,
    });
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
    // Commas alone would name no key and redact nothing at all: refused, naming the variable.
    expect(() => loadConfig({ LOG_REDACT_KEYS: ' , ,' })).toThrow(/^LOG_REDACT_KEYS: expected one or more comma-separated keys, or unset, got " , ,"/);
    expect([...loadConfig({ LOG_REDACT_KEYS: 'pin,' }).logRedactKeys]).toEqual(['pin']);
    expect(redact({ session_id: 'x', sessionId: 'y' }, loadConfig({ LOG_REDACT_KEYS: 'Session-ID' }).logRedactKeys)).toEqual({
      session_id: '[redacted]',
      sessionId: '[redacted]',
    });
  });
});
