// A reference point, not sessiongate: the session gateway a team might write in an afternoon.
// fastify + @fastify/http-proxy; the `sid` cookie's SHA-256 looked up with one GETEX per
// request (sliding the idle TTL on every read), role `user` required, an HMAC-signed
// identity header for the upstream. With CACHE_MS > 0, an lru-cache of that many ms sits in
// front of Redis (and revocation waits for it to expire). It reads a copy of the sessions
// the benchmark writes for sessiongate (under KEY_PREFIX), so both do the same lookups.
import { createHash, createHmac, randomBytes } from 'node:crypto';
import Fastify from 'fastify';
import httpProxy from '@fastify/http-proxy';
import { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';

const upstream = process.env.UPSTREAM;
const prefix = process.env.PREFIX ?? '/api/orders';
const keyPrefix = process.env.KEY_PREFIX ?? 'sg:';
const cacheMs = Number(process.env.CACHE_MS ?? 0);
const idleMs = Number(process.env.IDLE_MS ?? 30 * 60_000);
if (!upstream || !process.env.REDIS_URL) {
  process.stderr.write('quick-gateway: UPSTREAM and REDIS_URL are required\n');
  process.exit(2);
}

const redis = new Redis(process.env.REDIS_URL);
const secret = randomBytes(32);
const cache = cacheMs > 0 ? new LRUCache({ max: 100_000, ttl: cacheMs }) : null;
const SID = /(?:^|;\s*)sid=([^;]+)/;

// the key layout sessiongate writes: `s:{<the token's slot tag>}<sid>`, sid from the token's SHA-256
const TOKEN_RANDOM_LENGTH = 43;
const SID_LENGTH = 22;

async function sessionOf(token) {
  const hash = createHash('sha256').update(token).digest('base64url').slice(0, SID_LENGTH);
  const hit = cache?.get(hash);
  if (hit) return hit;
  const raw = await redis.getex(`${keyPrefix}s:{${token.slice(TOKEN_RANDOM_LENGTH + 1)}}${hash}`, 'PX', idleMs);
  if (raw === null) return null;
  // the record format, version 2: `{"sub":…,"2":["role role", createdAt ms, absolute timeout s, …]}`
  const { sub, 2: [roles, createdAt, absoluteS] } = JSON.parse(raw);
  const record = { sub, roles: typeof roles === 'string' ? roles.split(' ') : roles };
  if (createdAt + absoluteS * 1000 <= Date.now()) return null;
  cache?.set(hash, record);
  return record;
}

const app = Fastify({ logger: false });
await app.register(httpProxy, {
  upstream,
  prefix,
  rewritePrefix: prefix,
  async preHandler(request, reply) {
    const token = SID.exec(request.headers.cookie ?? '')?.[1];
    const record = token ? await sessionOf(token) : null;
    if (!record) return reply.code(401).send({ error: 'unauthenticated' });
    if (!record.roles.includes('user')) return reply.code(403).send({ error: 'forbidden' });
    const payload = Buffer.from(JSON.stringify({ sub: record.sub, roles: record.roles, exp: Math.floor(Date.now() / 1000) + 60 })).toString('base64url');
    request.identity = `${payload}.${createHmac('sha256', secret).update(payload).digest('base64url')}`;
  },
  replyOptions: {
    rewriteRequestHeaders: (request, headers) => {
      const { cookie: _cookie, ...rest } = headers;
      return { ...rest, 'x-user': request.identity };
    },
  },
});
const address = await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT ?? 0) });
process.stdout.write(`${JSON.stringify({ port: Number(new URL(address).port) })}\n`);
process.on('SIGTERM', () => void app.close().then(() => redis.quit()).then(() => process.exit(0)));
