// A Redis with an idle `timeout` (common on managed Redis) closes a client that sent nothing for
// that long. The API's connection fails fast, so an API with nothing to do had its connection
// closed every few seconds: it logged an outage each time, and a request that came while it
// reconnected was answered 503. The API and the exporter's scrape connection now PING below the
// server's timeout, so that the connection Redis sees stays the same one.
import { once } from 'node:events';
import IORedis from 'ioredis';
import { writeLanesFile } from './fixtures/worker-process';
import { spawnApi, spawnExporter, type AppProcess } from './support/prometheus';
import { removeDir, startRedis, type RedisProcess } from './support/redis-server';
import { testPrefix, waitUntil } from './support/wait';

/** The age in seconds of each connection named `name`, by CLIENT LIST. */
async function ageOf(redis: IORedis, name: string): Promise<number[]> {
  const list = (await redis.client('LIST')) as string;
  return list
    .split('\n')
    .filter((line) => line.includes(` name=${name} `))
    .map((line) => Number(/ age=(\d+)/.exec(line)?.[1]));
}

describe('a Redis that closes idle clients (timeout 1)', () => {
  const lanesFile = writeLanesFile({ lanes: { work: { concurrency: 1 } } });
  let redis: RedisProcess;
  let client: IORedis;
  const apps: AppProcess[] = [];

  beforeAll(async () => {
    redis = await startRedis(['--timeout', '1']);
    client = new IORedis(redis.url);
  });

  afterAll(async () => {
    await Promise.all(apps.map((app) => app.kill('SIGKILL')));
    client?.disconnect();
    await redis?.stop();
    if (redis) removeDir(redis.dir);
    lanesFile.cleanup();
  });

  it('keeps the API and exporter connections open while idle, so the API logs no outage and answers the next request', async () => {
    const env = { REDIS_URL: redis.url, BULLPEN_PREFIX: testPrefix('idle'), LANES_FILE: lanesFile.file, API_KEYS: 'acme:idle-timeout-key' };
    const [api, exporter] = await Promise.all([spawnApi(env), spawnExporter(env)]);
    apps.push(api, exporter);

    // Our own client, idle as long, is closed by Redis: the timeout is in force.
    await once(client, 'close');
    // Several timeouts on, each app still talks over the connection it opened first.
    await waitUntil(
      async () => {
        const ages = [...(await ageOf(client, 'bullpen-api')), ...(await ageOf(client, 'bullpen-exporter-scrape'))];
        return ages.length === 2 && ages.every((age) => age >= 5);
      },
      { what: 'the API and exporter connections to outlive five idle timeouts', timeoutMs: 20_000, intervalMs: 200 },
    );
    expect(api.logs().filter((line) => String(line.msg).startsWith('redis connection lost'))).toEqual([]);

    const reply = await fetch(`${api.url}/v1/lanes/work/jobs`, {
      method: 'POST',
      headers: { authorization: 'Bearer idle-timeout-key', 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'noop' }),
    });
    expect(reply.status).toBe(201);
  }, 90_000);
});
