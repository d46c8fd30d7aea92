import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import { durationSetting, setting } from '@sessiongate/service-kit';
import type { RedisClient } from './store.js';

/** How long one Redis command may take before the request fails closed with 503. @default 1000 */
export const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 1000;
/** Cap of the reconnect back-off. @default 1000 */
export const DEFAULT_REDIS_MAX_RECONNECT_DELAY_MS = 1000;

export type RedisConnection =
  | { mode: 'standalone'; url: string }
  | { mode: 'sentinel'; sentinels: { host: string; port: number }[]; masterName: string; url?: string }
  | { mode: 'cluster'; nodes: { host: string; port: number }[]; url?: string };

export interface RedisConnectionOptions {
  connection: RedisConnection;
  /** @default DEFAULT_REDIS_COMMAND_TIMEOUT_MS */
  commandTimeoutMs?: number;
  /** Password for Sentinel nodes themselves (REDIS_SENTINEL_PASSWORD). */
  sentinelPassword?: string;
  /** Connection name shown by CLIENT LIST. */
  connectionName?: string;
}

function hostPort(s: string, variable: string): { host: string; port: number } {
  const m = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(s.trim());
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) {
    throw new Error(`${variable}: "${s.trim()}" is not host:port`);
  }
  return { host: m[1]!, port: Number(m[2]) };
}

/**
 * Reads the Redis settings from the environment: REDIS_URL for standalone (`redis://`,
 * `rediss://` for TLS), REDIS_SENTINELS + REDIS_SENTINEL_MASTER for Sentinel, and
 * REDIS_CLUSTER_NODES for Cluster. With Sentinel or Cluster, REDIS_URL still supplies the
 * username, password and TLS of the data nodes.
 */
export function redisConnectionFromEnv(env: NodeJS.ProcessEnv): RedisConnection {
  const url = env.REDIS_URL?.trim() || undefined;
  if (url !== undefined && !/^rediss?:\/\//.test(url)) {
    throw new Error(`REDIS_URL: must start with redis:// or rediss://, got "${url.replace(/\/\/[^@]*@/, '//***@')}"`);
  }
  const cluster = env.REDIS_CLUSTER_NODES?.trim();
  const sentinels = env.REDIS_SENTINELS?.trim();
  if (cluster && sentinels) throw new Error('REDIS_CLUSTER_NODES and REDIS_SENTINELS: set one of them, not both');
  if (cluster) {
    return { mode: 'cluster', nodes: cluster.split(',').map((s) => hostPort(s, 'REDIS_CLUSTER_NODES')), ...(url ? { url } : {}) };
  }
  if (sentinels) {
    const masterName = env.REDIS_SENTINEL_MASTER?.trim();
    if (!masterName) throw new Error('REDIS_SENTINEL_MASTER: required with REDIS_SENTINELS (the master group name, e.g. mymaster)');
    return {
      mode: 'sentinel',
      sentinels: sentinels.split(',').map((s) => hostPort(s, 'REDIS_SENTINELS')),
      masterName,
      ...(url ? { url } : {}),
    };
  }
  return { mode: 'standalone', url: url ?? 'redis://127.0.0.1:6379' };
}

/** What {@link redisOptionsFromEnv} needs besides the environment. */
export interface RedisOptionsFromEnv {
  /** Connection name shown by CLIENT LIST, e.g. `sessiongate-gateway`. */
  connectionName: string;
  /** Command timeout when REDIS_COMMAND_TIMEOUT is unset. @default DEFAULT_REDIS_COMMAND_TIMEOUT_MS */
  commandTimeoutMs?: number;
}

/**
 * Every Redis setting of the environment, as every sessiongate process reads them: the
 * connection (see {@link redisConnectionFromEnv}), REDIS_COMMAND_TIMEOUT and
 * REDIS_SENTINEL_PASSWORD.
 *
 * @throws SettingError naming the variable.
 */
export function redisOptionsFromEnv(env: NodeJS.ProcessEnv, opts: RedisOptionsFromEnv): RedisConnectionOptions {
  const connection = setting('REDIS_URL', () => redisConnectionFromEnv(env));
  return {
    connection,
    commandTimeoutMs: durationSetting(env, 'REDIS_COMMAND_TIMEOUT', opts.commandTimeoutMs ?? DEFAULT_REDIS_COMMAND_TIMEOUT_MS),
    ...(env.REDIS_SENTINEL_PASSWORD ? { sentinelPassword: env.REDIS_SENTINEL_PASSWORD } : {}),
    connectionName: opts.connectionName,
  };
}

/** Credentials, database and TLS of a redis:// or rediss:// URL, as ioredis options. */
function urlOptions(url: string | undefined): RedisOptions {
  if (!url) return {};
  const u = new URL(url);
  const opts: RedisOptions = {};
  if (u.username) opts.username = decodeURIComponent(u.username);
  if (u.password) opts.password = decodeURIComponent(u.password);
  const db = u.pathname.replace(/^\//, '');
  if (db) opts.db = Number(db);
  if (u.protocol === 'rediss:') opts.tls = {};
  return opts;
}

/** A redacted description for logs: never a password. */
export function describeConnection(c: RedisConnection): string {
  const redact = (url: string) => url.replace(/\/\/[^@/]*@/, '//***@');
  if (c.mode === 'standalone') return redact(c.url);
  if (c.mode === 'sentinel') return `sentinel ${c.sentinels.map((s) => `${s.host}:${s.port}`).join(',')} master ${c.masterName}`;
  return `cluster ${c.nodes.map((s) => `${s.host}:${s.port}`).join(',')}`;
}

/**
 * A client that fails fast instead of queueing: while Redis is unreachable, commands reject
 * at once (no offline queue) or after the command timeout (a paused server), so protected
 * routes answer 503 promptly; it reconnects by itself with a capped back-off.
 */
export function createRedisClient(opts: RedisConnectionOptions): RedisClient {
  const commandTimeout = opts.commandTimeoutMs ?? DEFAULT_REDIS_COMMAND_TIMEOUT_MS;
  const common: RedisOptions = {
    commandTimeout,
    connectTimeout: Math.max(commandTimeout, 2000),
    enableOfflineQueue: false,
    // commands issued in one tick share one write (and their replies one read)
    enableAutoPipelining: true,
    maxRetriesPerRequest: 0,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 10), DEFAULT_REDIS_MAX_RECONNECT_DELAY_MS),
    ...(opts.connectionName ? { connectionName: opts.connectionName } : {}),
  };
  const c = opts.connection;
  if (c.mode === 'standalone') {
    return new Redis(c.url, common);
  }
  if (c.mode === 'sentinel') {
    const data = urlOptions(c.url);
    return new Redis({
      ...common,
      ...data,
      // without this flag ioredis ignores `tls` for the master it was sent to: a rediss://
      // REDIS_URL would silently talk plaintext to the data nodes
      ...(data.tls ? { enableTLSForSentinelMode: true } : {}),
      sentinels: c.sentinels,
      name: c.masterName,
      ...(opts.sentinelPassword ? { sentinelPassword: opts.sentinelPassword } : {}),
      sentinelRetryStrategy: (times: number) => Math.min(100 * times, DEFAULT_REDIS_MAX_RECONNECT_DELAY_MS),
      // after a failover, reconnect to whoever is master now
      reconnectOnError: (err: Error) => /READONLY/.test(err.message),
    });
  }
  const clusterOpts: ClusterOptions = {
    enableOfflineQueue: false,
    enableAutoPipelining: true,
    clusterRetryStrategy: (times) => Math.min(100 * times, DEFAULT_REDIS_MAX_RECONNECT_DELAY_MS),
    redisOptions: { ...common, ...urlOptions(c.url) },
  };
  return new Cluster(c.nodes, clusterOpts);
}

/**
 * Waits until the client is ready, or rejects after `timeoutMs`. Used at start-up to log
 * whether Redis answers; the process keeps running (and /readyz says 503) either way.
 */
export async function waitUntilReady(client: RedisClient, timeoutMs: number): Promise<boolean> {
  if (client.status === 'ready') return true;
  return new Promise((resolve) => {
    const done = (ok: boolean) => {
      clearTimeout(timer);
      client.off('ready', onReady);
      resolve(ok);
    };
    const onReady = () => done(true);
    const timer = setTimeout(() => done(false), timeoutMs);
    client.on('ready', onReady);
  });
}

/** Options of a connection that only carries invalidations: queue while reconnecting, never time out. */
const TRACKING_CONNECTION = {
  // invalidations arrive as pub/sub messages only under RESP2 (ioredis drops RESP3 invalidate pushes)
  protocol: 2,
  lazyConnect: true,
  enableOfflineQueue: true,
  enableAutoPipelining: false,
  // tracking must be turned on before subscribing, on each new connection: the caller does it
  autoResubscribe: false,
  commandTimeout: undefined,
  maxRetriesPerRequest: null,
  connectionName: 'sessiongate-tracking',
} as const;

/**
 * A connection for Redis key tracking (client-side caching) to the one node of a standalone
 * or Sentinel client (Sentinel: whoever is master now), with the client's credentials and TLS.
 */
export function trackingConnectionFor(client: Redis): Redis {
  return client.duplicate({ ...TRACKING_CONNECTION });
}

/** A connection for Redis key tracking to one master of a Cluster, with the Cluster's credentials and TLS. */
export function trackingConnectionToNode(cluster: Cluster, host: string, port: number): Redis {
  return new Redis({
    ...(cluster.options.redisOptions ?? {}),
    ...TRACKING_CONNECTION,
    host,
    port,
    // a node gone for good leaves the slot map at the next refresh; until then keep trying
    retryStrategy: (times) => Math.min(50 * times, DEFAULT_REDIS_MAX_RECONNECT_DELAY_MS),
  });
}

/** Whether Redis answers a PING within `timeoutMs` (for readiness checks). Never throws. */
export async function pingWithin(client: RedisClient, timeoutMs: number): Promise<boolean> {
  if (client.status !== 'ready') return false;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
  });
  try {
    return await Promise.race([client.ping().then((r) => r === 'PONG', () => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
