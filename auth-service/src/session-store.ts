import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import { KeyLayout, SessionStore, redisPlugin, type RedisClient, type RedisConnectionOptions } from '@sessiongate/session';

/** How long start-up waits for Redis before going on (and /readyz says 503). @default 3000 */
export const REDIS_STARTUP_WAIT_MS = 3000;

export interface SessionStorePluginOptions {
  /** Connect with these settings (the plugin owns and closes the client)… */
  connection?: RedisConnectionOptions;
  /** …or use a client the application owns (left open on close). */
  client?: RedisClient;
  keyPrefix: string;
  /** Most live sessions per user. @default DEFAULT_MAX_SESSIONS_PER_USER */
  maxSessionsPerUser?: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    sessionStore: SessionStore;
  }
}

/** The session store, on the shared Redis plugin's client. */
const sessionStorePlugin: FastifyPluginAsync<SessionStorePluginOptions> = async (fastify, opts) => {
  await fastify.register(redisPlugin, {
    ...(opts.client ? { client: opts.client } : opts.connection ? { connection: opts.connection } : {}),
    serves: 'logins',
    startupWaitMs: REDIS_STARTUP_WAIT_MS,
  });
  const storeOpts = opts.maxSessionsPerUser === undefined ? {} : { maxSessionsPerUser: opts.maxSessionsPerUser };
  fastify.decorate('sessionStore', new SessionStore(fastify.sessionRedis.client, new KeyLayout(opts.keyPrefix), storeOpts));
};

export default fp(sessionStorePlugin, { name: 'sessiongate-auth-session-store', fastify: '5.x' });
