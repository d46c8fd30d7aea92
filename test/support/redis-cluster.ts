import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Cluster, Redis } from 'ioredis';
import { startRedisServer, waitFor, type RedisServer } from './redis-server.js';

const run = promisify(execFile);

export interface RedisCluster {
  /** The masters, in the order given to `redis-cli --cluster create`. */
  readonly nodes: readonly RedisServer[];
  /** `host:port,host:port,…`: the value of REDIS_CLUSTER_NODES. */
  readonly seeds: string;
  /** A Cluster client of the test's own (close it yourself, or let stop() do it). */
  client(): Cluster;
  /** A plain connection to one master (for per-node questions: DBSIZE, SCAN, CLIENT LIST, PUBLISH). */
  node(i: number): Redis;
  /** Stops every node and closes every client handed out. */
  stop(): Promise<void>;
}

/**
 * A Redis Cluster of `masters` private `redis-server` processes on free ports, no replicas,
 * built with `redis-cli --cluster create` and waited on until every node says
 * `cluster_state:ok` and knows every other one.
 */
export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  const nodes: RedisServer[] = [];
  const clients: (Redis | Cluster)[] = [];
  const stop = async () => {
    await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
    await Promise.all(nodes.map((n) => n.stop()));
  };
  try {
    for (let i = 0; i < masters; i++) {
      // the nodes file is relative to the server's own (temporary) --dir
      nodes.push(
        await startRedisServer({
          args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000'],
        }),
      );
    }
    const addresses = nodes.map((n) => `127.0.0.1:${n.port}`);
    await run('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'], { timeout: 20_000 });
    const node = (i: number) => {
      const c = new Redis(nodes[i]!.port, '127.0.0.1', { lazyConnect: false, maxRetriesPerRequest: 1 });
      c.on('error', () => undefined);
      clients.push(c);
      return c;
    };
    const probes = nodes.map((_, i) => node(i));
    await waitFor(
      'cluster_state:ok on every node',
      async () => {
        const infos = await Promise.all(probes.map((p) => p.cluster('INFO') as Promise<string>));
        return infos.every((s) => /cluster_state:ok/.test(s) && new RegExp(`cluster_known_nodes:${masters}\\b`).test(s));
      },
      15_000,
    );
    const seeds = addresses.join(',');
    return {
      nodes,
      seeds,
      node,
      client() {
        const c = new Cluster(nodes.map((n) => ({ host: '127.0.0.1', port: n.port })));
        c.on('error', () => undefined);
        clients.push(c);
        return c;
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Keys under `match` that one node holds (SCAN sees only the node's own keys). */
export async function nodeKeys(node: Redis, match: string): Promise<string[]> {
  const out: string[] = [];
  for await (const keys of node.scanStream({ match, count: 1000 }) as AsyncIterable<string[]>) out.push(...keys);
  return out;
}
