// Runs the producer API in-process on a free port against real Redis, for test/api-*.test.ts.
import { once } from 'node:events';
import net from 'node:net';
import type IORedis from 'ioredis';
import { createLogger, createRedis, laneBacklogKeys, type BullpenConfig } from '@bullpen/core';
import { createApiApp } from '../src/app';
import { createApiRedis } from '../src/redis-guard';
import { listen } from '../src/server';
import { parseExposition } from '../../../test/support/prometheus';
import { cleanupPrefix, standaloneUrl, testConfig, type TestConfigOptions } from '../../../test/support/config';

export const KEYS = {
  acme: 'acme-secret-key-1',
  beta: 'beta-secret-key-2',
  /** acme's second key, restricted to the critic lane. */
  acmeCriticOnly: 'acme-critic-key-3',
} as const;

export const API_KEYS = `acme:${KEYS.acme},beta:${KEYS.beta},acme:${KEYS.acmeCriticOnly}:critic`;

export interface Reply<T = any> {
  status: number;
  headers: Headers;
  body: T;
  /** Milliseconds from sending the request to having read the whole response. */
  elapsedMs: number;
}

export interface RequestOptions {
  /** API key; default acme's. null sends no Authorization header. */
  key?: string | null;
  /** JSON-encoded unless `raw` is given. */
  body?: unknown;
  /** Sent as is: a string as UTF-8, bytes unchanged. */
  raw?: string | Uint8Array;
  headers?: Record<string, string>;
}

export interface TestApi {
  config: BullpenConfig;
  url: string;
  /** The API's producer connection. */
  producer: IORedis;
  /** A separate connection for the test's own reads and writes. */
  redis: IORedis;
  request<T = any>(method: string, path: string, options?: RequestOptions): Promise<Reply<T>>;
  /** Jobs not yet started in a lane: wait + paused + delayed + prioritized. */
  backlog(lane: string): Promise<number>;
  /** One series of the API's own /metrics (`labels` among its labels), or undefined when it has none. */
  metric(name: string, labels?: Record<string, string>): Promise<number | undefined>;
  stop(): Promise<void>;
}

/** Jobs not yet started in a lane (wait + paused + delayed + prioritized), read directly. */
export async function backlogOf(redis: IORedis, prefix: string, lane: string): Promise<number> {
  const keys = laneBacklogKeys(prefix, lane);
  const [wait, paused, delayed, prioritized] = await Promise.all([
    redis.llen(keys.wait),
    redis.llen(keys.paused),
    redis.zcard(keys.delayed),
    redis.zcard(keys.prioritized),
  ]);
  return wait + paused + delayed + prioritized;
}

export async function whenReady(redis: IORedis): Promise<void> {
  if (redis.status !== 'ready') await once(redis, 'ready');
}

export async function startTestApi(options: TestConfigOptions & { waitForRedis?: boolean } = {}): Promise<TestApi> {
  // acme operates the lanes (pause, resume); beta is a tenant like any other.
  const config = testConfig({ ...options, env: { API_KEYS, API_OPERATOR_TENANTS: 'acme', ...options.env } });
  const producer = createApiRedis(standaloneUrl(config), undefined, config.apiRedisTimeoutMs);
  const redis = createRedis(standaloneUrl(config), 'worker');
  if (options.waitForRedis !== false) await Promise.all([whenReady(producer), whenReady(redis)]);
  const api = createApiApp({ config, redis: producer, logger: createLogger('api', 'error') });
  await api.start();
  const server = await listen(api.app, '127.0.0.1', 0);

  const testApi: TestApi = {
    config,
    url: server.url,
    producer,
    redis,
    async request(method, path, { key = KEYS.acme, body, raw, headers = {} } = {}) {
      const init: RequestInit = { method, headers: { ...headers } };
      const sent = init.headers as Record<string, string>;
      if (key !== null) sent.authorization = `Bearer ${key}`;
      if (raw !== undefined || body !== undefined) {
        sent['content-type'] ??= 'application/json';
        init.body = raw ?? JSON.stringify(body);
      }
      const started = Date.now();
      const response = await fetch(`${server.url}${path}`, init);
      const text = await response.text();
      const type = response.headers.get('content-type') ?? '';
      const parsed = text && type.includes('json') ? JSON.parse(text) : text;
      return { status: response.status, headers: response.headers, body: parsed, elapsedMs: Date.now() - started };
    },
    backlog: (lane) => backlogOf(redis, config.prefix, lane),
    async metric(name, labels = {}) {
      const samples = parseExposition(String((await testApi.request('GET', '/metrics', { key: null })).body));
      return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
    },
    async stop() {
      await server.close(1000);
      await api.close();
      producer.disconnect();
      redis.disconnect();
      await cleanupPrefix(config.prefix, standaloneUrl(config));
    },
  };
  return testApi;
}

/**
 * A TCP proxy to Redis that delays every chunk in both directions. Over it, the Redis calls of one
 * request are far apart and the calls of concurrent requests fall between them: the race that a
 * check-then-act (count, then add; look up a key, then add) loses.
 */
export async function startLatencyProxy(target: URL, delayMs: number): Promise<{ url: string; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const [from, to] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      sockets.add(from);
      from.on('data', (chunk) => setTimeout(() => to.writable && to.write(chunk), delayMs));
      from.on('error', () => to.destroy());
      from.on('close', () => setTimeout(() => to.destroy(), delayMs));
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `redis://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
