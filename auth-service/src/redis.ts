import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import {
  KeyLayout,
  SessionStore,
  createRedisClient,
  describeConnection,
  waitUntilReady,
  type RedisClient,
  type RedisConnectionOptions,
} from 'sessiongate/session';

/** How long start-up waits for Redis before going on (and /readyz says 503). @default 3000 */
export const REDIS_STARTUP_WAIT_MS = 3000;

export interface RedisPluginOptions {
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
    redis: RedisClient;
    sessionStore: SessionStore;
  }
}

/** The Redis client and the session store: opened here, closed here. */
const redisPlugin: FastifyPluginAsync<RedisPluginOptions> = async (fastify, opts) => {
  if (!opts.client && !opts.connection) throw new Error('sessiongate-auth-redis: pass `connection` or `client`');
  const owned = !opts.client;
  const redis = opts.client ?? createRedisClient(opts.connection!);
  if (owned) {
    const log = fastify.log.child({ component: 'redis' });
    const where = describeConnection(opts.connection!.connection);
    let healthy = false;
    let warned = false;
    redis.on('ready', () => {
      healthy = true;
      warned = false;
      log.info({ redis: where }, 'redis connected');
    });
    redis.on('error', (err: Error) => {
      // ioredis repeats the same error on every retry: say it once per outage
      if (healthy || !warned) log.warn({ err: { message: err.message, code: (err as { code?: string }).code } }, 'redis error');
      healthy = false;
      warned = true;
    });
    if (!(await waitUntilReady(redis, REDIS_STARTUP_WAIT_MS))) {
      log.warn({ redis: where }, 'redis is not reachable yet: logins answer 503 until it is');
    }
  }
  fastify.decorate('redis', { getter: () => redis });
  const storeOpts = opts.maxSessionsPerUser === undefined ? {} : { maxSessionsPerUser: opts.maxSessionsPerUser };
  fastify.decorate('sessionStore', new SessionStore(redis, new KeyLayout(opts.keyPrefix), storeOpts));
  fastify.addHook('onClose', async () => {
    if (owned) await redis.quit().catch(() => redis.disconnect());
  });
};

export default fp(redisPlugin, { name: 'sessiongate-auth-redis', fastify: '5.x' });
