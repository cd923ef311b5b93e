import { EventEmitter } from 'node:events';
import { ReplyError } from 'ioredis';
import { createLogger } from './logger';
import { RedisConnectionWatch, accessRefusalOf, explainAccessRefusal, requiredAclRules } from './redis-access';
import type { RedisTarget } from './redis-target';

const standalone: RedisTarget = { mode: 'standalone', url: 'redis://bullpen:secret@redis:6379' };
const cluster: RedisTarget = { mode: 'cluster', nodes: [{ host: 'a', port: 7000 }], auth: { tls: false } };
const wrongPass = () => new ReplyError('WRONGPASS invalid username-password pair or user is disabled.');
const noInfo = () => new ReplyError("NOPERM this user has no permissions to run the 'info' command");

describe('Redis refusing access', () => {
  it('tells refused credentials from a missing permission, and both from everything else', () => {
    expect(accessRefusalOf(wrongPass())).toBe('credentials');
    expect(accessRefusalOf(new ReplyError('NOAUTH Authentication required.'))).toBe('credentials');
    expect(accessRefusalOf(new ReplyError('ERR invalid password'))).toBe('credentials');
    expect(accessRefusalOf(noInfo())).toBe('permission');
    expect(accessRefusalOf(new ReplyError('NOPERM this user has no permissions to access one of the keys used as arguments'))).toBe('permission');
    // Inside a script, Redis 7 reports the ACL's refusal as an ERR.
    expect(accessRefusalOf(new ReplyError("ERR The user executing the script can't run this command or subcommand script: 4df0, on @user_script:1."))).toBe(
      'permission',
    );
    const aborted = Object.assign(new ReplyError('EXECABORT Transaction discarded because of previous errors.'), { previousErrors: [noInfo()] });
    expect(accessRefusalOf(aborted)).toBe('permission');

    expect(accessRefusalOf(new ReplyError('ERR unknown command'))).toBeUndefined();
    expect(accessRefusalOf(new ReplyError("OOM command not allowed when used memory > 'maxmemory'."))).toBeUndefined();
    expect(accessRefusalOf(new Error('WRONGPASS'))).toBeUndefined(); // not a reply from Redis
  });

  it('names the setting that holds the credentials and the rules to grant', () => {
    expect(explainAccessRefusal(wrongPass(), standalone, 'bullpen')).toMatch(/^Redis refused the user and password in REDIS_URL \(WRONGPASS /);
    expect(explainAccessRefusal(wrongPass(), cluster, 'bullpen')).toMatch(/in REDIS_CLUSTER_NODES/);
    const permission = explainAccessRefusal(noInfo(), standalone, 'jobs');
    expect(permission).toContain("(NOPERM this user has no permissions to run the 'info' command)");
    expect(permission).toContain(`ACL SETUSER bullpen ${requiredAclRules('jobs')}`);
    expect(permission).toMatch(/^the Redis user "bullpen" in REDIS_URL may not run/);
    expect(permission).not.toContain('secret');
    // No user in the URLs: Redis's default user.
    expect(explainAccessRefusal(noInfo(), cluster, 'jobs')).toMatch(/^the Redis user "default" in REDIS_CLUSTER_NODES .*ACL SETUSER default /);
    const named = { mode: 'standalone', url: 'redis://jobs%2Drunner:secret@localhost:6379' } as const;
    expect(explainAccessRefusal(noInfo(), named, 'jobs')).toMatch(/^the Redis user "jobs-runner" in REDIS_URL .*ACL SETUSER jobs-runner resetkeys/);
    expect(explainAccessRefusal(noInfo(), { ...cluster, auth: { username: 'ops', tls: false } }, 'jobs')).toMatch(
      /^the Redis user "ops" in REDIS_CLUSTER_NODES .*ACL SETUSER ops /,
    );
    expect(requiredAclRules('jobs')).toBe('resetkeys ~jobs:* resetchannels &jobs:* +@all -@dangerous +info +client|list');
  });

  it('logs a refusal once per interval however often it comes, and remembers why the connection is down until ready', () => {
    jest.useFakeTimers();
    try {
      const logger = createLogger('test', 'error');
      const lines: unknown[][] = [];
      const warnings: unknown[][] = [];
      jest.spyOn(logger, 'error').mockImplementation(((...args: unknown[]) => lines.push(args)) as never);
      jest.spyOn(logger, 'warn').mockImplementation(((...args: unknown[]) => warnings.push(args)) as never);
      const watch = new RedisConnectionWatch({ target: standalone, prefix: 'bullpen', logger, logIntervalMs: 1000 });
      const client = new EventEmitter();
      watch.watch(client);

      const err = wrongPass();
      client.emit('error', err);
      // BullMQ passes the same error on from every queue on the connection: counted once.
      expect(watch.note(err)).toMatch(/REDIS_URL/);
      client.emit('error', wrongPass());
      expect(watch.downReason).toMatch(/WRONGPASS/);
      expect(lines).toHaveLength(1);
      // Any other connection error: a warning, once per interval too, and the reason it is down.
      const refused = new Error('connect ECONNREFUSED 127.0.0.1:6379');
      client.emit('error', refused);
      client.emit('error', new Error('connect ECONNREFUSED 127.0.0.1:6379'));
      expect(watch.downReason).toBe('connect ECONNREFUSED 127.0.0.1:6379');
      expect(warnings).toEqual([['cannot reach redis', { error: 'connect ECONNREFUSED 127.0.0.1:6379' }]]);
      expect(watch.handled(refused)).toBe(true);
      expect(watch.handled(new Error('connect ECONNREFUSED 127.0.0.1:6379'))).toBe(false);
      expect(lines).toHaveLength(1);
      jest.advanceTimersByTime(1000);
      expect(lines).toHaveLength(2);
      expect(lines[1]![1]).toMatchObject({ repeats: 1 });
      expect(warnings[1]).toEqual(['cannot reach redis', expect.objectContaining({ repeats: 1 })]);

      client.emit('ready');
      expect(watch.downReason).toBeUndefined();
      // A missing permission fails commands on a ready connection: logged, not kept as the reason it is down.
      expect(watch.note(noInfo())).toMatch(/NOPERM/);
      expect(watch.downReason).toBeUndefined();
      expect(watch.note(new ReplyError('ERR wrong number of arguments'))).toBeUndefined();
      watch.close();
    } finally {
      jest.useRealTimers();
    }
  });
});
