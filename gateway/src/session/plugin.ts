import type { FastifyBaseLogger, FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { KeyLayout } from './record.js';
import { createRedisClient, describeConnection, type RedisConnectionOptions } from './redis.js';
import { SessionResolver, type SessionResolverOptions } from './resolver.js';
import { SessionStore, type CommandObserver, type RedisClient } from './store.js';

export interface SessionPluginOptions extends Omit<SessionResolverOptions, 'log'> {
  /** Connect with these settings (the plugin owns and closes the client)… */
  connection?: RedisConnectionOptions;
  /** …or use a client the application owns (left open on close). */
  client?: RedisClient;
  /** @default 'sg:' */
  keyPrefix?: string;
  /** Latency of each Redis command on the request path. */
  onRedisCommand?: CommandObserver;
}

export interface Sessions {
  readonly redis: RedisClient;
  readonly store: SessionStore;
  readonly resolver: SessionResolver;
}

declare module 'fastify' {
  interface FastifyInstance {
    sessions: Sessions;
  }
}

/**
 * Says once that Redis is out of reach and once that it is back, whatever told us (the
 * client's connection events or a command of the request path): an outage is one pair of
 * log lines, not one ioredis message per request.
 */
class StoreReachability {
  private down = false;
  constructor(
    private readonly log: FastifyBaseLogger,
    private readonly where: string,
  ) {}

  failed(reason: string): void {
    if (this.down) return;
    this.down = true;
    this.log.error({ redis: this.where, reason }, `redis is not reachable (${reason}): protected routes answer 503 until it is`);
  }

  reachable(): void {
    if (!this.down) return;
    this.down = false;
    this.log.info({ redis: this.where }, 'redis is reachable again: protected routes are served');
  }
}

/** The Redis client, the session store and the resolver with its cache: opened here, closed here. */
const sessionPlugin: FastifyPluginAsync<SessionPluginOptions> = async (fastify, opts) => {
  if (!opts.client && !opts.connection) throw new Error('sessiongate-session: pass `connection` or `client`');
  const owned = !opts.client;
  const redis = opts.client ?? createRedisClient(opts.connection!);
  const log = fastify.log.child({ component: 'redis' });
  const reach = new StoreReachability(log, opts.connection ? describeConnection(opts.connection.connection) : 'redis');
  if (owned) {
    let connected = false;
    redis.on('ready', () => {
      if (!connected) log.info({ redis: describeConnection(opts.connection!.connection) }, 'redis connected');
      connected = true;
      reach.reachable();
    });
    // ioredis repeats the same error on every retry: the reachability says it once
    redis.on('error', (err: Error & { code?: string }) => reach.failed(err.code ?? err.message));
  }
  const observe: CommandObserver = (command, seconds, ok) => {
    if (ok) reach.reachable();
    else reach.failed(`${command} failed`);
    opts.onRedisCommand?.(command, seconds, ok);
  };
  const store = new SessionStore(redis, new KeyLayout(opts.keyPrefix), { observe });
  const { connection: _c, client: _cl, keyPrefix: _k, onRedisCommand: _o, ...resolverOpts } = opts;
  const resolver = new SessionResolver(store, { ...resolverOpts, log: fastify.log.child({ component: 'sessions' }) });
  await resolver.start();
  fastify.decorate('sessions', { redis, store, resolver });
  fastify.addHook('onClose', async () => {
    await resolver.stop();
    if (owned) await redis.quit().catch(() => redis.disconnect());
  });
};

export default fp(sessionPlugin, { name: 'sessiongate-session', fastify: '5.x' });
