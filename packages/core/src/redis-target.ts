// Where Redis is: one server (REDIS_URL), a Redis Cluster (REDIS_CLUSTER_NODES) or a master
// found through Sentinel (REDIS_SENTINELS + REDIS_SENTINEL_MASTER). Parsed once, here, into a
// typed target that createRedis() turns into a connection of the right kind.
import { ConfigError } from './errors';

export interface RedisAddress {
  readonly host: string;
  readonly port: number;
}

/** Credentials and TLS as given in the URLs (username and password decoded). */
export interface RedisAuth {
  readonly username?: string;
  readonly password?: string;
  /** True for rediss:// URLs. */
  readonly tls: boolean;
}

export type RedisTarget =
  | { readonly mode: 'standalone'; readonly url: string }
  | { readonly mode: 'cluster'; readonly nodes: readonly RedisAddress[]; readonly auth: RedisAuth }
  | {
      readonly mode: 'sentinel';
      readonly sentinels: readonly RedisAddress[];
      /** Credentials for the sentinels themselves. */
      readonly sentinelAuth: RedisAuth;
      readonly masterName: string;
      /** Credentials and database of the master, from REDIS_URL when it is set. */
      readonly auth: RedisAuth;
      readonly db: number;
    };

type Env = Record<string, string | undefined>;

function fail(name: string, expected: string, got?: string, options: { parsed?: boolean } = {}): never {
  const shown = got === undefined ? '' : `, got ${JSON.stringify(masked(got, options.parsed ?? true))}`;
  throw new ConfigError(`${name}: expected ${expected}${shown}`);
}

/** What a text that is not a URL may be shown as whole: a bare host or host:port. */
const BARE_ADDRESS = /^[A-Za-z0-9.-]+(:\d{1,5})?$/;

/**
 * A Redis URL (or comma-separated list of them) as an error may show it. Everything between the
 * scheme and the last `@` of each URL is masked, whatever it holds: a password may contain `/`,
 * `:`, `#`, `?` or `@`, and a URL that does not parse has no userinfo to trust. A text that did
 * not parse and has no `@` is shown only when it is a bare host[:port]; else it could be a
 * password with the `@` missing. Passwords given as query parameters (which ioredis takes) are
 * masked too.
 */
function masked(text: string, parsed = true): string {
  return text
    .split(',')
    .map((item) => {
      const scheme = /^\s*[A-Za-z][A-Za-z0-9+.-]*:\/*/.exec(item)?.[0] ?? '';
      const at = item.lastIndexOf('@');
      if (at >= 0) return `${scheme}***${item.slice(at)}`.replace(/([?&](?:password|sentinelPassword)=)[^&\s]*/gi, '$1***');
      if (!parsed && !BARE_ADDRESS.test(item.trim())) return `${scheme}(not shown)`;
      return item.replace(/([?&](?:password|sentinelPassword)=)[^&\s]*/gi, '$1***');
    })
    .join(',');
}

function parseUrl(name: string, text: string): URL {
  if (!/^rediss?:\/\//.test(text)) fail(name, 'a redis:// or rediss:// URL', text, { parsed: false });
  try {
    return new URL(text);
  } catch {
    return fail(name, 'a valid URL (a password with reserved characters such as / @ : # ? percent-encoded)', text, { parsed: false });
  }
}

function authOf(url: URL): RedisAuth {
  return {
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    tls: url.protocol === 'rediss:',
  };
}

/** A comma-separated list of redis:// URLs naming host and port, e.g. for cluster seed nodes. */
function parseNodeList(name: string, text: string): { nodes: RedisAddress[]; auth: RedisAuth } {
  const urls = text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => parseUrl(name, s));
  if (urls.length === 0) fail(name, 'at least one redis://host:port URL', text);
  const nodes = urls.map((u) => {
    if (!u.hostname) fail(name, 'a host in every URL', u.toString());
    return { host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port ? Number(u.port) : 6379 };
  });
  const auths = urls.map(authOf);
  const first = auths[0] as RedisAuth;
  if (auths.some((a) => a.username !== first.username || a.password !== first.password || a.tls !== first.tls)) {
    fail(name, 'the same credentials and scheme in every URL', text);
  }
  return { nodes, auth: first };
}

export function loadRedisTarget(env: Env): RedisTarget {
  const clusterText = env.REDIS_CLUSTER_NODES?.trim();
  const sentinelText = env.REDIS_SENTINELS?.trim();
  if (clusterText && sentinelText) fail('REDIS_CLUSTER_NODES', 'REDIS_CLUSTER_NODES or REDIS_SENTINELS, not both');
  if (env.REDIS_SENTINEL_MASTER && !sentinelText) fail('REDIS_SENTINEL_MASTER', 'to be set only with REDIS_SENTINELS');

  if (clusterText) {
    if (env.REDIS_URL) fail('REDIS_URL', 'to be unset with REDIS_CLUSTER_NODES (give credentials in the node URLs)');
    const { nodes, auth } = parseNodeList('REDIS_CLUSTER_NODES', clusterText);
    return { mode: 'cluster', nodes, auth };
  }

  if (sentinelText) {
    const { nodes, auth } = parseNodeList('REDIS_SENTINELS', sentinelText);
    const masterName = env.REDIS_SENTINEL_MASTER?.trim();
    if (!masterName) fail('REDIS_SENTINEL_MASTER', 'the name of the master group the sentinels monitor');
    let masterAuth: RedisAuth = { tls: false };
    let db = 0;
    if (env.REDIS_URL) {
      // With Sentinel, REDIS_URL only carries the master's credentials and database.
      const url = parseUrl('REDIS_URL', env.REDIS_URL);
      masterAuth = authOf(url);
      db = databaseOf(url, env.REDIS_URL);
    }
    return { mode: 'sentinel', sentinels: nodes, sentinelAuth: auth, masterName, auth: masterAuth, db };
  }

  const url = env.REDIS_URL || 'redis://127.0.0.1:6379';
  // ioredis would send SELECT NaN for a path that is not a number and crash the app on its reply.
  databaseOf(parseUrl('REDIS_URL', url), url);
  return { mode: 'standalone', url };
}

/** The database number a REDIS_URL's path names (0 when it names none). */
function databaseOf(url: URL, text: string): number {
  const path = url.pathname.replace(/^\//, '');
  if (path === '') return 0;
  if (!/^\d{1,5}$/.test(path)) fail('REDIS_URL', 'a database number as its path (redis://host:port/0)', text);
  return Number(path);
}

function maskAuth(auth: RedisAuth): Record<string, unknown> {
  return { ...(auth.username ? { username: auth.username } : {}), ...(auth.password ? { password: '***' } : {}), tls: auth.tls };
}

/** The target for a startup log line, with passwords masked. */
export function describeRedisTarget(target: RedisTarget): Record<string, unknown> {
  switch (target.mode) {
    case 'standalone': {
      const url = new URL(target.url);
      if (url.password) url.password = '***';
      // ioredis also takes credentials as query parameters.
      for (const name of ['password', 'sentinelPassword']) if (url.searchParams.has(name)) url.searchParams.set(name, '***');
      return { mode: 'standalone', url: url.toString() };
    }
    case 'cluster':
      return { mode: 'cluster', nodes: target.nodes.map((n) => `${n.host}:${n.port}`), ...maskAuth(target.auth) };
    case 'sentinel':
      return {
        mode: 'sentinel',
        sentinels: target.sentinels.map((n) => `${n.host}:${n.port}`),
        masterName: target.masterName,
        db: target.db,
        master: maskAuth(target.auth),
        sentinel: maskAuth(target.sentinelAuth),
      };
  }
}
