import type { FastifyBaseLogger, FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import type { ReadinessCheck } from '@sessiongate/service-kit';
import { createRedisClient, describeConnection, pingWithin, waitUntilReady, type RedisConnectionOptions } from './redis.js';
import type { RedisClient } from './store.js';

export interface RedisPluginOptions {
  /** Connect with these settings (the plugin owns and closes the client)… */
  connection?: RedisConnectionOptions;
  /** …or use a client the application owns (left open on close). */
  client?: RedisClient;
  /** What a Redis outage stops, for the log lines, e.g. `protected routes`. */
  serves: string;
  /** How long start-up waits for an owned client to connect (0: not at all). @default 0 */
  startupWaitMs?: number;
}

/** The Redis that holds the sessions, and whether it answers. */
export interface SessionRedis {
  readonly client: RedisClient;
  /** Commands report here too: an outage is one pair of log lines, whoever noticed it. */
  readonly reachability: Reachability;
  /** The /readyz check: a PING answered within `timeoutMs`. */
  readiness(timeoutMs: number): ReadinessCheck;
}

declare module 'fastify' {
  interface FastifyInstance {
    sessionRedis: SessionRedis;
  }
}

/**
 * Says once that Redis is out of reach and once that it is back, whatever told us (the
 * client's connection events or a command): an outage is one pair of log lines, not one
 * ioredis message per request.
 */
export class Reachability {
  private down = false;
  constructor(
    private readonly log: FastifyBaseLogger,
    private readonly where: string,
    private readonly serves: string,
  ) {}

  failed(reason: string): void {
    if (this.down) return;
    this.down = true;
    this.log.error({ redis: this.where, reason }, `redis is not reachable (${reason}): ${this.serves} answer 503 until it is`);
  }

  reachable(): void {
    if (!this.down) return;
    this.down = false;
    this.log.info({ redis: this.where }, `redis is reachable again: ${this.serves} are served`);
  }
}

/** The Redis client of the session store: opened here, closed here. */
const redisPlugin: FastifyPluginAsync<RedisPluginOptions> = async (fastify, opts) => {
  if (!opts.client && !opts.connection) throw new Error('sessiongate-redis: pass `connection` or `client`');
  const owned = !opts.client;
  const client = opts.client ?? createRedisClient(opts.connection!);
  const log = fastify.log.child({ component: 'redis' });
  const where = opts.connection ? describeConnection(opts.connection.connection) : 'redis';
  const reachability = new Reachability(log, where, opts.serves);
  if (owned) {
    let connected = false;
    client.on('ready', () => {
      if (!connected) log.info({ redis: where }, 'redis connected');
      connected = true;
      reachability.reachable();
    });
    // ioredis repeats the same error on every retry: the reachability says it once
    client.on('error', (err: Error & { code?: string }) => reachability.failed(err.code ?? err.message));
    const wait = opts.startupWaitMs ?? 0;
    if (wait > 0 && !(await waitUntilReady(client, wait))) reachability.failed(`no answer within ${wait} ms`);
  }
  fastify.decorate('sessionRedis', {
    client,
    reachability,
    readiness: (timeoutMs: number) => ({ name: 'redis', check: () => pingWithin(client, timeoutMs) }),
  });
  fastify.addHook('onClose', async () => {
    if (owned) await client.quit().catch(() => client.disconnect());
  });
};

export default fp(redisPlugin, { name: 'sessiongate-redis', fastify: '5.x' });
