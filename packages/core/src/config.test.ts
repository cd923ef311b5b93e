import { ConfigError } from './errors';
import { loadConfig, mayOperateLanes, reloadApiKeys } from './config';
import { findApiKey, hashApiKey } from './api-keys';

const lanes = (body: unknown) => ({ readFile: () => JSON.stringify(body) });
const defaultsEnv = {};
/** Serves `text` as /keys.txt, and the shipped lanes file as itself. */
const keysFile = (text: string) => ({
  readFile: (file: string): string => (file === '/keys.txt' ? text : (require('node:fs') as typeof import('node:fs')).readFileSync(file, 'utf8')),
});

describe('loadConfig', () => {
  it('applies the documented defaults with the shipped lanes file', () => {
    const config = loadConfig(defaultsEnv);
    expect(config.redis).toEqual({ mode: 'standalone', url: 'redis://127.0.0.1:6379' });
    expect(config.prefix).toBe('bullpen');
    expect(config.port).toBe(3000);
    expect(config.maxHandlersPerProcess).toBe(32);
    expect(config.laneNames).toEqual(['tool_call', 'file_read', 'file_write', 'critic', 'forecast_model']);
    expect(config.lanes.tool_call).toMatchObject({ concurrency: 8, maxQueueSize: 1000, attempts: 3 });
    expect(config.lanes.file_read?.concurrency).toBe(16);
    expect(config.lanes.file_write?.concurrency).toBe(4);
    expect(config.lanes.critic?.concurrency).toBe(3);
    expect(config.lanes.forecast_model?.concurrency).toBe(1);
    expect(config.lanes.tool_call?.retention.failed).toEqual({ ageSeconds: 604800, count: 10000 });
    expect(config.workerLanes).toEqual(config.laneNames);
    expect(config.authDisabled).toBe(false);
    expect(config.apiRedisMemoryLimit).toBe(0.9);
    expect(config.apiRedisTimeoutMs).toBe(1000);
    expect(config.redisMarkerCheckIntervalMs).toBe(30_000);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('names the variable and what was expected for a bad value', () => {
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(/PORT: expected an integer from 0 to 65535, got "eighty"/);
    expect(() => loadConfig({ REDIS_URL: 'http://x' })).toThrow(/REDIS_URL: expected a redis:\/\//);
    expect(() => loadConfig({ LOG_LEVEL: 'loud' })).toThrow(/LOG_LEVEL/);
    expect(() => loadConfig({ AUTH_DISABLED: 'maybe' })).toThrow(/AUTH_DISABLED: expected true or false/);
    expect(() => loadConfig({ WORKER_LANES: 'tool_call,nope' })).toThrow(/WORKER_LANES: expected lanes from .*got "nope"/);
    expect(() => loadConfig({ API_REDIS_MEMORY_LIMIT: '90%' })).toThrow(/API_REDIS_MEMORY_LIMIT: expected a number from 0.1 to 1, got "90%"/);
    expect(() => loadConfig({ REDIS_MARKER_CHECK_INTERVAL_MS: '30s' })).toThrow(/REDIS_MARKER_CHECK_INTERVAL_MS: expected an integer from 100 to 3600000, got "30s"/);
    expect(() => loadConfig({ REDIS_MARKER_CHECK_INTERVAL_MS: '0' })).toThrow(/REDIS_MARKER_CHECK_INTERVAL_MS: expected an integer from 100/);
    expect(() => loadConfig({ API_REDIS_MEMORY_LIMIT: '1.5' })).toThrow(/API_REDIS_MEMORY_LIMIT: expected a number from 0.1 to 1/);
    expect(loadConfig({ API_REDIS_MEMORY_LIMIT: '0.75' }).apiRedisMemoryLimit).toBe(0.75);
    expect(() => loadConfig({ API_REDIS_TIMEOUT_MS: '10' })).toThrow(/API_REDIS_TIMEOUT_MS: expected an integer from 50 to 60000, got "10"/);
    expect(loadConfig({ API_REDIS_TIMEOUT_MS: '3000' }).apiRedisTimeoutMs).toBe(3000);
  });

  it('does not read a malformed boolean as true', () => {
    expect(loadConfig({ AUTH_DISABLED: 'false' }).authDisabled).toBe(false);
    expect(loadConfig({ AUTH_DISABLED: '0' }).authDisabled).toBe(false);
    expect(loadConfig({ AUTH_DISABLED: 'true' }).authDisabled).toBe(true);
  });

  it('refuses a retry budget that allows no retry in defer mode, which would hold every retry forever', () => {
    const budget = (retryBudget: object) => lanes({ lanes: { a: { concurrency: 1, retryBudget } } });
    expect(() => loadConfig({ LANES_FILE: '/x/lanes.json' }, budget({ ratio: 0, minRetriesPerSecond: 0 }))).toThrow(
      /LANES_FILE \(\/x\/lanes.json\): field "lanes.a.retryBudget.onExhausted": a budget of ratio 0 and fewer than one retry per window/,
    );
    expect(() => loadConfig({ LANES_FILE: '/x/lanes.json' }, budget({ ratio: 0, minRetriesPerSecond: 0.05, windowSeconds: 10 }))).toThrow(ConfigError);
    // No retry, failed at once: allowed; and any budget that grants some may defer.
    expect(() => loadConfig({ LANES_FILE: '/x/lanes.json' }, budget({ ratio: 0, minRetriesPerSecond: 0, onExhausted: 'fail' }))).not.toThrow();
    expect(() => loadConfig({ LANES_FILE: '/x/lanes.json' }, budget({ ratio: 0, minRetriesPerSecond: 1 }))).not.toThrow();
  });

  it('names the lanes file and the field when a lane policy is invalid', () => {
    const bad = { lanes: { tool_call: { concurrency: 0 } } };
    expect(() => loadConfig({ LANES_FILE: '/x/lanes.json' }, lanes(bad))).toThrow(ConfigError);
    expect(() => loadConfig({ LANES_FILE: '/x/lanes.json' }, lanes(bad))).toThrow(
      /LANES_FILE \(\/x\/lanes.json\): field "lanes.tool_call.concurrency"/,
    );
    expect(() => loadConfig({ LANES_FILE: '/x/lanes.json' }, lanes({ lanes: { 'Bad Name': { concurrency: 1 } } }))).toThrow(
      /field "lanes.Bad Name": expected a lane name matching/,
    );
    expect(() => loadConfig({ LANES_FILE: '/x/lanes.json' }, lanes({ lanes: { a: { concurrency: 1, typo: 1 } } }))).toThrow(
      /typo/,
    );
    // Node would fire these timers after 1 ms: every attempt would time out, every lock lapse.
    for (const field of ['timeoutMs', 'lockDurationMs']) {
      expect(() => loadConfig({ LANES_FILE: '/x/lanes.json' }, lanes({ lanes: { a: { concurrency: 1, [field]: 2 ** 31 } } }))).toThrow(
        new RegExp(`field "lanes.a.${field}"`),
      );
    }
    expect(() => loadConfig({ LANES_FILE: '/x/lanes.json' }, { readFile: () => '{not json' })).toThrow(
      /LANES_FILE \(\/x\/lanes.json\): expected a readable JSON file/,
    );
  });

  it('names the operator tenants, refusing one no key belongs to', () => {
    const keys = 'acme:aaaaaaaaaa,beta:bbbbbbbbbb';
    expect([...(loadConfig({ API_KEYS: keys, API_OPERATOR_TENANTS: 'acme' }).apiOperatorTenants ?? [])]).toEqual(['acme']);
    expect(() => loadConfig({ API_KEYS: keys, API_OPERATOR_TENANTS: 'acme,ops' })).toThrow(/API_OPERATOR_TENANTS: expected tenants of API_KEYS \(acme, beta\), got "ops"/);
    expect(mayOperateLanes(loadConfig({ API_KEYS: keys }), 'acme')).toBe(false);
    expect(mayOperateLanes(loadConfig({ API_KEYS: 'acme:aaaaaaaaaa,acme:cccccccccc' }), 'acme')).toBe(true);
    expect(mayOperateLanes(loadConfig({ AUTH_DISABLED: 'true' }), 'default')).toBe(true);
  });

  it('refuses an API_OPERATOR_TENANTS that names no tenant at all, ignoring blank entries beside one', () => {
    expect(() => loadConfig({ API_KEYS: 'acme:aaaaaaaaaa', API_OPERATOR_TENANTS: ',' })).toThrow(
      /^API_OPERATOR_TENANTS: expected one or more comma-separated tenants, or unset, got ","/,
    );
    expect(() => loadConfig({ API_KEYS: 'acme:aaaaaaaaaa', API_OPERATOR_TENANTS: ' , ,' })).toThrow(/^API_OPERATOR_TENANTS: /);
    expect([...(loadConfig({ API_KEYS: 'acme:aaaaaaaaaa', API_OPERATOR_TENANTS: 'acme,' }).apiOperatorTenants ?? [])]).toEqual(['acme']);
    // Empty, or blank, is unset.
    expect(loadConfig({ API_KEYS: 'acme:aaaaaaaaaa', API_OPERATOR_TENANTS: ' ' }).apiOperatorTenants).toBeUndefined();
  });

  it('selects worker lanes from WORKER_LANES', () => {
    expect(loadConfig({ WORKER_LANES: 'critic, tool_call' }).workerLanes).toEqual(['critic', 'tool_call']);
  });

  it('refuses a WORKER_LANES that names no lane, rather than start a worker serving nothing', () => {
    expect(() => loadConfig({ WORKER_LANES: ',' })).toThrow(/^WORKER_LANES: expected one or more comma-separated lanes from .*, or \* for all, or unset, got ","/);
    expect(loadConfig({ WORKER_LANES: 'critic,' }).workerLanes).toEqual(['critic']);
  });

  it('parses API keys with tenants, lane sets and hashed keys', () => {
    const hashed = hashApiKey('secret-of-b').toString('hex');
    const config = loadConfig({ API_KEYS: `acme:acme-key-1,beta:sha256=${hashed}:critic|tool_call` });
    expect(config.apiKeys).toHaveLength(2);
    expect(findApiKey(config.apiKeys, 'acme-key-1')?.tenant).toBe('acme');
    const beta = findApiKey(config.apiKeys, 'secret-of-b');
    expect(beta?.tenant).toBe('beta');
    expect([...(beta?.lanes ?? [])]).toEqual(['critic', 'tool_call']);
    expect(findApiKey(config.apiKeys, 'wrong-key')).toBeUndefined();
  });

  it('rejects API keys that name unknown lanes or are malformed, naming the entry', () => {
    expect(() => loadConfig({ API_KEYS: 'acme:acme-key-1:nope' })).toThrow(/API_KEYS: entry 1: field "lanes": unknown lane "nope"/);
    expect(() => loadConfig({ API_KEYS: 'acme' })).toThrow(/API_KEYS: entry 1: expected tenant:key/);
    expect(() => loadConfig({ API_KEYS: 'acme:short' })).toThrow(/at least 8 characters/);
    expect(() => loadConfig({ API_KEYS: 'a:b', API_KEYS_FILE: '/k' })).toThrow(/API_KEYS_FILE: expected API_KEYS or API_KEYS_FILE/);
  });

  it('reads API keys from API_KEYS_FILE, one per line with comments', () => {
    const config = loadConfig(
      { API_KEYS_FILE: '/keys.txt' },
      {
        readFile: (file) => {
          if (file === '/keys.txt') return '# keys\nacme:acme-key-1\n\nbeta:beta-key-22\n';
          return require('node:fs').readFileSync(file, 'utf8');
        },
      },
    );
    expect(config.apiKeys.map((k) => k.tenant)).toEqual(['acme', 'beta']);
  });

  it('keeps every key on a commented-out line of API_KEYS_FILE off, commas and all', () => {
    const config = loadConfig(
      { API_KEYS_FILE: '/keys.txt' },
      keysFile('teamy:y-current-key\n# revoked: teamy:y-old-key-1,teamy:y-leaked-key-2\n  # rotate monthly, see runbook\n'),
    );
    expect(config.apiKeys.map((k) => k.tenant)).toEqual(['teamy']);
    expect(findApiKey(config.apiKeys, 'y-current-key')?.tenant).toBe('teamy');
    expect(findApiKey(config.apiKeys, 'y-old-key-1')).toBeUndefined();
    expect(findApiKey(config.apiKeys, 'y-leaked-key-2')).toBeUndefined();
  });

  it('reads several comma-separated entries on one line of API_KEYS_FILE, and keeps a # later in a line', () => {
    const config = loadConfig({ API_KEYS_FILE: '/keys.txt' }, keysFile('acme:acme-key-1, beta:beta-key-22\r\ngamma:gamma#key-3\n'));
    expect(config.apiKeys.map((k) => k.tenant)).toEqual(['acme', 'beta', 'gamma']);
    expect(findApiKey(config.apiKeys, 'gamma#key-3')?.tenant).toBe('gamma');
  });

  it('refuses an API_KEYS entry that starts with #, instead of reading the keys after its comma', () => {
    expect(() => loadConfig({ API_KEYS: 'teamy:y-current-key\n# revoked: teamy:y-old-key-1,teamy:y-leaked-key-2' })).toThrow(
      /^API_KEYS: entry 2: field "tenant"/,
    );
  });

  it('refuses a key given twice, to two tenants or with two lane bindings, without showing it', () => {
    const twoTenants = () => loadConfig({ API_KEYS: 'teamx:shared-key-1,teamy:shared-key-1' });
    expect(twoTenants).toThrow(ConfigError);
    expect(twoTenants).toThrow(/^API_KEYS: entry 2 \(tenant teamy\) has the same key as entry 1 \(tenant teamx\)/);
    expect(() => loadConfig({ API_KEYS: 't:tenant-key-1:critic,t:tenant-key-1:tool_call' })).toThrow(
      /^API_KEYS: entry 2 \(tenant t\) has the same key as entry 1 \(tenant t\)/,
    );
    // The same key, once as its hash.
    const hashed = hashApiKey('shared-key-1').toString('hex');
    expect(() => loadConfig({ API_KEYS_FILE: '/keys.txt' }, keysFile(`teamx:shared-key-1\n# teamy\nteamy:sha256=${hashed}\n`))).toThrow(
      /^API_KEYS_FILE \(\/keys.txt\): line 3 \(tenant teamy\) has the same key as line 1 \(tenant teamx\)/,
    );
    for (const load of [twoTenants, () => loadConfig({ API_KEYS_FILE: '/keys.txt' }, keysFile(`teamx:shared-key-1\nteamy:sha256=${hashed}\n`))]) {
      const message = (() => {
        try {
          load();
          return '';
        } catch (err) {
          return (err as Error).message;
        }
      })();
      expect(message).not.toContain('shared-key-1');
      expect(message).not.toContain(hashed);
    }
  });

  it('refuses a key no client can send in an Authorization header, naming the entry or line but never the key', () => {
    for (const key of ['my secret key 1', 'euro\u20ac-secret-key', 'tab\tseparated-key', 'caf\u00e9-secret-key', 'bell\u0007-secret-key']) {
      const messages = [
        (() => {
          try {
            loadConfig({ API_KEYS: `beta:beta-key-22,acme:${key}` });
          } catch (err) {
            return (err as Error).message;
          }
          return `API_KEYS with ${JSON.stringify(key)} was accepted`;
        })(),
        (() => {
          try {
            loadConfig({ API_KEYS_FILE: '/keys.txt' }, keysFile(`# keys\nbeta:beta-key-22\nacme:${key}:critic\n`));
          } catch (err) {
            return (err as Error).message;
          }
          return `API_KEYS_FILE with ${JSON.stringify(key)} was accepted`;
        })(),
      ];
      expect(messages[0]).toMatch(/^API_KEYS: entry 2: field "key": expected visible ASCII characters only/);
      expect(messages[1]).toMatch(/^API_KEYS_FILE \(\/keys.txt\): line 3: field "key": expected visible ASCII characters only/);
      for (const message of messages) for (const part of [key, key.slice(0, 4), key.slice(-10)]) expect(message).not.toContain(part);
    }
    // Every visible ASCII character but the separators is a key's to use.
    const printable = Array.from({ length: 0x7e - 0x20 }, (_, i) => String.fromCharCode(0x21 + i)).filter((c) => c !== ':' && c !== ',').join('');
    expect(findApiKey(loadConfig({ API_KEYS: `acme:${printable}` }).apiKeys, printable)?.tenant).toBe('acme');
  });

  it('names API_KEYS_FILE and the line of a malformed entry', () => {
    expect(() => loadConfig({ API_KEYS_FILE: '/keys.txt' }, keysFile('# keys\n\nacme:acme-key-1\nbeta\n'))).toThrow(
      /^API_KEYS_FILE \(\/keys.txt\): line 4: expected tenant:key/,
    );
    expect(() => loadConfig({ API_KEYS_FILE: '/keys.txt' }, keysFile('acme:acme-key-1\nbeta:beta-key-22,beta:short\n'))).toThrow(
      /^API_KEYS_FILE \(\/keys.txt\): line 2, entry 2: field "key": expected at least 8 characters/,
    );
  });
});

describe('reloadApiKeys', () => {
  const fromFile = (text: string, env: Record<string, string> = {}) => loadConfig({ API_KEYS_FILE: '/keys.txt', ...env }, keysFile(text));
  const reading = (text: string) => ({ readFile: (file: string) => (file === '/keys.txt' ? text : '') });
  const messageOf = (reload: () => unknown): string => {
    try {
      reload();
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return (err as Error).message;
    }
    throw new Error('expected the reload to throw');
  };

  it('re-reads API_KEYS_FILE: a revoked key is gone, an added one is there with its lanes', () => {
    const config = fromFile('acme:acme-key-old\n');
    expect(config.apiKeysFile).toBe('/keys.txt');
    const keys = reloadApiKeys(config, reading('# acme:acme-key-old revoked\nacme:acme-key-new\nbeta:beta-key-1:critic\n')) ?? [];
    expect(findApiKey(keys, 'acme-key-old')).toBeUndefined();
    expect(findApiKey(keys, 'acme-key-new')?.tenant).toBe('acme');
    expect([...(findApiKey(keys, 'beta-key-1')?.lanes ?? [])]).toEqual(['critic']);
    expect(Object.isFrozen(keys)).toBe(true);
  });

  it('has nothing to re-read when the keys come from API_KEYS', () => {
    const config = loadConfig({ API_KEYS: 'acme:acme-key-1' });
    expect(config.apiKeysFile).toBeUndefined();
    expect(reloadApiKeys(config, reading('beta:beta-key-1'))).toBeUndefined();
  });

  it('refuses a file that loadConfig would refuse, naming the file and the line but never a key', () => {
    const config = fromFile('acme:acme-key-1\nbeta:beta-key-1\n', { API_OPERATOR_TENANTS: 'acme' });
    expect(messageOf(() => reloadApiKeys(config, reading('acme:acme-key-1\nbeta:short\n')))).toMatch(
      /^API_KEYS_FILE \(\/keys.txt\): line 2: field "key": expected at least 8 characters/,
    );
    expect(messageOf(() => reloadApiKeys(config, reading('acme:acme-key-1:nope\n')))).toMatch(/^API_KEYS_FILE \(\/keys.txt\): line 1: field "lanes": unknown lane "nope"/);
    const duplicate = messageOf(() => reloadApiKeys(config, reading('acme:acme-key-1\nbeta:acme-key-1\n')));
    expect(duplicate).toMatch(/line 2 \(tenant beta\) has the same key as line 1/);
    expect(duplicate).not.toContain('acme-key-1');
    // The operator tenant must still hold a key.
    expect(messageOf(() => reloadApiKeys(config, reading('beta:beta-key-1\n')))).toMatch(
      /^API_OPERATOR_TENANTS: expected tenants of API_KEYS_FILE \(beta\), got "acme"/,
    );
    const unreadable = () => {
      throw new Error('ENOENT: no such file or directory');
    };
    expect(messageOf(() => reloadApiKeys(config, { readFile: unreadable }))).toMatch(/^API_KEYS_FILE \(\/keys.txt\): expected a readable file \(ENOENT/);
  });

  it('refuses a file without any key unless authentication is off, for every app that reloads it', () => {
    const config = fromFile('acme:acme-key-1\n');
    expect(messageOf(() => reloadApiKeys(config, reading('# acme:acme-key-1 revoked\n')))).toMatch(
      /^API_KEYS_FILE \(\/keys.txt\): expected at least one tenant:key entry; set AUTH_DISABLED=true/,
    );
    expect(messageOf(() => reloadApiKeys(config, reading('')))).toMatch(/expected at least one tenant:key entry/);
    const open = fromFile('acme:acme-key-1\n', { AUTH_DISABLED: 'true' });
    expect(reloadApiKeys(open, reading(''))).toEqual([]);
  });
});

describe('describeConfig', () => {
  it('masks the Redis password and API keys', () => {
    const { describeConfig } = require('./config') as typeof import('./config');
    const config = loadConfig({ REDIS_URL: 'redis://user:hunter2@redis:6379', API_KEYS: 'acme:acme-key-1' });
    const text = JSON.stringify(describeConfig(config));
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain('acme-key-1');
    expect(text).toContain('acme');
  });
});
