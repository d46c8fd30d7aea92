import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import {
  KeyLayout,
  SessionStore,
  redisPlugin,
  type CommandObserver,
  type RedisClient,
  type RedisConnectionOptions,
} from '@sessiongate/session';
import { SessionResolver, type SessionResolverOptions } from './resolver.js';

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

/** The session store and the resolver with its cache, on the shared Redis plugin's client. */
const sessionPlugin: FastifyPluginAsync<SessionPluginOptions> = async (fastify, opts) => {
  if (!opts.client && !opts.connection) throw new Error('sessiongate-session: pass `connection` or `client`');
  await fastify.register(redisPlugin, {
    ...(opts.client ? { client: opts.client } : { connection: opts.connection! }),
    serves: 'protected routes',
  });
  const { client: redis, reachability } = fastify.sessionRedis;
  const observe: CommandObserver = (command, seconds, ok) => {
    if (ok) reachability.reachable();
    else reachability.failed(`${command} failed`);
    opts.onRedisCommand?.(command, seconds, ok);
  };
  const store = new SessionStore(redis, new KeyLayout(opts.keyPrefix), { observe });
  const { connection: _c, client: _cl, keyPrefix: _k, onRedisCommand: _o, ...resolverOpts } = opts;
  const resolver = new SessionResolver(store, { ...resolverOpts, log: fastify.log.child({ component: 'sessions' }) });
  await resolver.start();
  fastify.decorate('sessions', { redis, store, resolver });
  fastify.addHook('onClose', async () => {
    await resolver.stop();
  });
};

export default fp(sessionPlugin, { name: 'sessiongate-session', fastify: '5.x' });
