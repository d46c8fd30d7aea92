import type { FastifyPluginAsync } from 'fastify';
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

/** The Redis client, the session store and the resolver with its cache: opened here, closed here. */
const sessionPlugin: FastifyPluginAsync<SessionPluginOptions> = async (fastify, opts) => {
  if (!opts.client && !opts.connection) throw new Error('sessiongate-session: pass `connection` or `client`');
  const owned = !opts.client;
  const redis = opts.client ?? createRedisClient(opts.connection!);
  const log = fastify.log.child({ component: 'redis' });
  if (owned) {
    let healthy = false;
    redis.on('ready', () => {
      healthy = true;
      log.info({ redis: describeConnection(opts.connection!.connection) }, 'redis connected');
    });
    redis.on('error', (err: Error) => {
      // ioredis repeats the same error on every retry: say it once per outage
      if (healthy || !('logged' in redis)) log.warn({ err: { message: err.message, code: (err as { code?: string }).code } }, 'redis error');
      healthy = false;
      Object.assign(redis, { logged: true });
    });
  }
  const store = new SessionStore(redis, new KeyLayout(opts.keyPrefix), opts.onRedisCommand ? { observe: opts.onRedisCommand } : {});
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
