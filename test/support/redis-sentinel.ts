import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort, startRedisServer, waitForPort, type RedisServer } from './redis-server.js';

export const SENTINEL_MASTER_NAME = 'mymaster';
/** How long the sentinel waits before it calls the master down. */
export const SENTINEL_DOWN_AFTER_MS = 1000;

export interface RedisSentinelSetup {
  readonly master: RedisServer;
  readonly replica: RedisServer;
  readonly sentinelPort: number;
  /**
   * The environment that points sessiongate at this setup (REDIS_SENTINELS,
   * REDIS_SENTINEL_MASTER, and REDIS_SENTINEL_PASSWORD when the sentinel has one).
   */
  readonly env: Record<string, string>;
  /** A plain connection to a data node or the sentinel (closed by stop()). */
  connect(port: number): Redis;
  /** The master's address according to the sentinel. */
  masterPort(): Promise<number>;
  /** Stops every process and removes their directories. */
  stop(): Promise<void>;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface RedisSentinelOptions {
  /** The sentinel's own password (`requirepass` in its config); the data nodes have none. */
  sentinelPassword?: string;
}

/**
 * A master, one replica of it and one Sentinel (quorum 1) watching them, all private
 * processes on free ports. Resolves once the replica is in sync and the sentinel knows it,
 * so a failover can happen from then on.
 */
export async function startRedisSentinel(opts: RedisSentinelOptions = {}): Promise<RedisSentinelSetup> {
  const clients: Redis[] = [];
  const servers: RedisServer[] = [];
  let sentinel: ChildProcess | undefined;
  let sentinelPort = 0;
  const dir = mkdtempSync(path.join(tmpdir(), 'sessiongate-sentinel-'));
  const stop = async () => {
    for (const c of clients) c.disconnect();
    if (sentinel && sentinel.exitCode === null && sentinel.signalCode === null) {
      const exited = new Promise((r) => sentinel!.once('exit', r));
      sentinel.kill('SIGKILL');
      await exited;
    }
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  const connect = (port: number) => {
    const password = port === sentinelPort ? opts.sentinelPassword : undefined;
    const c = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 1, retryStrategy: () => 200, ...(password ? { password } : {}) });
    c.on('error', () => undefined);
    clients.push(c);
    return c;
  };
  try {
    // no delay before a full sync: the replica is usable at once
    const fast = ['--repl-diskless-sync-delay', '0'];
    const master = await startRedisServer({ args: fast });
    servers.push(master);
    const replica = await startRedisServer({ args: [...fast, '--replicaof', '127.0.0.1', String(master.port)] });
    servers.push(replica);
    const toReplica = connect(replica.port);
    await waitFor('the replica to sync', async () => /master_link_status:up/.test(await toReplica.info('replication')), 10_000);

    sentinelPort = await freePort();
    const conf = path.join(dir, 'sentinel.conf');
    writeFileSync(
      conf,
      [
        `port ${sentinelPort}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        'sentinel resolve-hostnames no',
        `sentinel monitor ${SENTINEL_MASTER_NAME} 127.0.0.1 ${master.port} 1`,
        `sentinel down-after-milliseconds ${SENTINEL_MASTER_NAME} ${SENTINEL_DOWN_AFTER_MS}`,
        `sentinel failover-timeout ${SENTINEL_MASTER_NAME} 5000`,
        `sentinel parallel-syncs ${SENTINEL_MASTER_NAME} 1`,
        ...(opts.sentinelPassword ? [`requirepass ${opts.sentinelPassword}`] : []),
        '',
      ].join('\n'),
    );
    sentinel = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
    sentinel.once('error', () => undefined);
    await waitForPort(sentinelPort);
    const toSentinel = connect(sentinelPort);
    await waitFor(
      'the sentinel to know the replica',
      async () => {
        const replicas = (await toSentinel.call('SENTINEL', 'REPLICAS', SENTINEL_MASTER_NAME)) as string[][];
        return replicas.some((fields) => {
          const f = Object.fromEntries(fields.flatMap((v, i) => (i % 2 ? [] : [[v, fields[i + 1]]])));
          return f.port === String(replica.port) && f.flags === 'slave' && f['master-link-status'] === 'ok';
        });
      },
      15_000,
    );
    return {
      master,
      replica,
      sentinelPort,
      env: {
        REDIS_SENTINELS: `127.0.0.1:${sentinelPort}`,
        REDIS_SENTINEL_MASTER: SENTINEL_MASTER_NAME,
        ...(opts.sentinelPassword ? { REDIS_SENTINEL_PASSWORD: opts.sentinelPassword } : {}),
      },
      connect,
      async masterPort() {
        const [, port] = (await toSentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', SENTINEL_MASTER_NAME)) as [string, string];
        return Number(port);
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
