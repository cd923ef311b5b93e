// Starts a private Redis Cluster: `primaries` redis-server processes on free loopback ports (each
// with its own cluster bus port and directory), joined with `redis-cli --cluster create`.
import { spawnSync } from 'node:child_process';
import IORedis from 'ioredis';
import { freePort, removeDir, startRedis, type RedisProcess } from './redis-server';
import { waitUntil } from './wait';

export interface RedisClusterProcess {
  nodes: RedisProcess[];
  /** REDIS_CLUSTER_NODES for the apps: every node's URL, comma-separated. */
  nodesEnv: string;
  /** The port of the primary serving a key's slot. */
  ownerOf(key: string): Promise<number>;
  stop(): Promise<void>;
}

async function clusterReady(nodes: readonly RedisProcess[]): Promise<boolean> {
  const states = await Promise.all(
    nodes.map(async (node) => {
      const client = new IORedis(node.url, { maxRetriesPerRequest: 1, lazyConnect: true });
      try {
        await client.connect();
        const info = String(await client.cluster('INFO'));
        return (
          info.includes('cluster_state:ok') &&
          info.includes('cluster_slots_ok:16384') &&
          info.includes(`cluster_known_nodes:${nodes.length}`)
        );
      } finally {
        client.disconnect();
      }
    }),
  );
  return states.every(Boolean);
}

/** One cluster-enabled redis-server. Its bus port is set explicitly (the default, port + 10000, may
 * be taken or out of range) and, like its port, is picked again if another test takes it first. */
function startClusterNode(): Promise<RedisProcess> {
  return startRedis(async () => ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-port', String(await freePort())]);
}

export async function startRedisCluster(primaries = 3): Promise<RedisClusterProcess> {
  const nodes: RedisProcess[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    for (const n of nodes) removeDir(n.dir);
  };
  try {
    for (let i = 0; i < primaries; i += 1) nodes.push(await startClusterNode());
    const created = spawnSync(
      'redis-cli',
      ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'],
      { encoding: 'utf8', timeout: 30_000 },
    );
    if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`);
    await waitUntil(() => clusterReady(nodes), { timeoutMs: 30_000, intervalMs: 100, what: 'the cluster to agree on its slots' });
  } catch (err) {
    await stop();
    throw err;
  }
  const first = nodes[0] as RedisProcess;
  return {
    nodes,
    nodesEnv: nodes.map((n) => n.url).join(','),
    async ownerOf(key) {
      const client = new IORedis(first.url, { maxRetriesPerRequest: 1 });
      try {
        const slot = Number(await client.cluster('KEYSLOT', key));
        const ranges = await client.cluster('SLOTS');
        const primary = ranges.find(([from, to]) => slot >= from && slot <= to)?.[2];
        if (!primary) throw new Error(`no primary serves slot ${slot}`);
        return primary[1];
      } finally {
        client.disconnect();
      }
    },
    stop,
  };
}
