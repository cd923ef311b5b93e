// The API and a worker runtime in this process on one test config, so on one Redis and one
// prefix: a job can be followed from its REST request to its handler.
import { createLogger, type BullpenConfig, type Logger } from '@bullpen/core';
import type IORedis from 'ioredis';
import { createApiApp, type ApiApp } from '../../apps/api/src/app';
import { listen, type RunningServer } from '../../apps/api/src/server';
import type { HandlerRegistry } from '../../apps/worker/src/registry';
import { WorkerRuntime } from '../../apps/worker/src/runtime';
import { cleanupPrefix } from './config';
import { connectProducer } from './producer';

export interface ApiAndWorkerOptions {
  /** Its API_KEYS must hold `apiKey`. */
  config: BullpenConfig;
  /** The key call() sends as its bearer token. */
  apiKey: string;
  registry: HandlerRegistry;
  /** The worker runtime's logger; default a worker logger at level error. */
  workerLogger?: Logger;
}

export interface ApiAndWorker {
  /** The API's Redis connection. */
  producer: IORedis;
  api: ApiApp;
  server: RunningServer;
  runtime: WorkerRuntime;
  /** Calls the API with the test's key, sending `body` as JSON, and parses the JSON answer. */
  call(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }>;
  /** Stops the worker, then the API and its connection, and removes the config's keys. */
  close(): Promise<void>;
}

export async function startApiAndWorker(options: ApiAndWorkerOptions): Promise<ApiAndWorker> {
  const { config, apiKey, registry } = options;
  const producer = await connectProducer(config);
  let api: ApiApp | undefined;
  let server: RunningServer | undefined;
  let runtime: WorkerRuntime | undefined;
  const close = async () => {
    await runtime?.close(5000);
    await server?.close(1000);
    await api?.close();
    producer.disconnect();
    await cleanupPrefix(config.prefix);
  };
  try {
    api = createApiApp({ config, redis: producer, logger: createLogger('api', 'error') });
    await api.start();
    server = await listen(api.app, '127.0.0.1', 0);
    runtime = new WorkerRuntime({ config, logger: options.workerLogger ?? createLogger('worker', 'error'), registry });
    await runtime.start();
  } catch (err) {
    await close();
    throw err;
  }
  const { url } = server;
  return {
    producer,
    api,
    server,
    runtime,
    async call(method, path, body, headers = {}) {
      const res = await fetch(`${url}${path}`, {
        method,
        headers: { authorization: `Bearer ${apiKey}`, ...(body ? { 'content-type': 'application/json' } : {}), ...headers },
        ...(body ? { body: JSON.stringify(body) } : {}),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    },
    close,
  };
}
