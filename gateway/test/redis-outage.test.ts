import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { KeyLayout, SessionStore, createRedisClient, waitUntilReady } from '@sessiongate/session';
import { SessionResolver } from '../src/session/resolver.js';
import { startTestGateway, routesYaml, type TestGateway } from '../../test/support/gateway.js';
import { startRedisServer, type RedisServer } from '../../test/support/redis-server.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';

// Redis down means protected routes fail closed (503), never open — whether the server is
// gone (killed: the connection drops) or silent (SIGSTOP: the connection stays open and
// nothing answers), with the session cache on or off. When Redis is back, the gateway
// recovers by itself and nobody was logged out.

const COMMAND_TIMEOUT_MS = 300;

let redis: RedisServer;
let up: Upstream;
let cached: TestGateway;
let direct: TestGateway;

beforeAll(async () => {
  redis = await startRedisServer();
  up = await startUpstream('svc');
  const routes = routesYaml({ public: up.url });
  cached = await startTestGateway({ redisUrl: redis.url, routes, env: { REDIS_COMMAND_TIMEOUT: `${COMMAND_TIMEOUT_MS}ms` } });
  direct = await startTestGateway({
    redisUrl: redis.url,
    routes,
    env: { REDIS_COMMAND_TIMEOUT: `${COMMAND_TIMEOUT_MS}ms`, SESSION_CACHE: 'false' },
  });
  // the tests' own clients reconnect too; their errors while Redis is down are expected
  for (const t of [cached, direct]) t.redis.on('error', () => undefined);
});

afterAll(async () => {
  redis?.resume();
  await cached?.close();
  await direct?.close();
  await up?.close();
  await redis?.stop();
});

beforeEach(() => up.clear());

function get(t: TestGateway, url: string, token?: string) {
  return t.gw.app.inject({ method: 'GET', url, headers: token ? { cookie: `sid=${token}` } : {} });
}

const forwardedOrders = () => up.received.filter((r) => r.url.startsWith('/orders'));

async function readyz(t: TestGateway): Promise<number> {
  return (await t.gw.ops.inject({ method: 'GET', url: '/readyz' })).statusCode;
}

/** Polls until `check` holds; resolves the milliseconds it took, rejects past `timeoutMs`. */
async function eventually(check: () => Promise<boolean>, timeoutMs = 5000): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (await check()) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) throw new Error(`not true within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function expectStoreUnavailable(res: { statusCode: number; json(): unknown; body: string }) {
  expect(res.statusCode).toBe(503);
  expect(res.json()).toEqual({ error: 'session_store_unavailable', message: expect.any(String) });
  expect(res.body).not.toMatch(/timed out|ECONN|stream|at \w+ \(/i);
}

describe('Redis paused (SIGSTOP: the connection stays open, nothing answers)', () => {
  it('fails closed within a bounded time, cache on and off, and the same sessions work after SIGCONT', async () => {
    const alice = await cached.login('alice', ['user']);
    const bob = await direct.login('bob', ['user']);
    // warm the cache: the second answer comes from memory
    expect((await get(cached, '/api/orders/1', alice)).statusCode).toBe(200);
    expect((await get(cached, '/api/orders/1', alice)).statusCode).toBe(200);
    expect(cached.gw.app.sessions.resolver.cacheSize).toBeGreaterThan(0);
    expect((await get(direct, '/api/orders/1', bob)).statusCode).toBe(200);
    up.clear();

    redis.pause();
    try {
      // no cache: the lookup itself times out
      const t0 = performance.now();
      expectStoreUnavailable(await get(direct, '/api/orders/1', bob));
      expect(performance.now() - t0).toBeLessThan(3000);

      // cache on: a session cached before the pause must stop being honoured as well,
      // although the invalidation channel's TCP connection never drops: the resolver pings
      // that connection and stops trusting the cache when a ping goes unanswered (≤ 750 ms)
      let firstRefusal: Awaited<ReturnType<typeof get>> | undefined;
      const took = await eventually(async () => {
        const res = await get(cached, '/api/orders/1', alice);
        if (res.statusCode === 200) return false;
        firstRefusal = res;
        return true;
      }, 3000);
      expect(took).toBeLessThan(3000);
      expectStoreUnavailable(firstRefusal!);
      // …and from then on, never open again while Redis is silent
      const servedBefore = forwardedOrders().length;
      for (let i = 0; i < 3; i++) {
        expectStoreUnavailable(await get(cached, '/api/orders/1', alice));
        expectStoreUnavailable(await get(direct, '/api/orders/1', bob));
      }
      expect(forwardedOrders()).toHaveLength(servedBefore);

      // routes that never look at the session keep working
      expect((await get(cached, '/public/x')).statusCode).toBe(200);
      expect((await get(direct, '/public/x')).statusCode).toBe(200);
      // not ready: a load balancer should send traffic elsewhere
      expect(await readyz(cached)).toBe(503);
      expect(await readyz(direct)).toBe(503);
    } finally {
      redis.resume();
    }

    // the same cookies work again: nobody was logged out, no gateway restart
    await eventually(async () => (await get(cached, '/api/orders/2', alice)).statusCode === 200);
    await eventually(async () => (await get(direct, '/api/orders/2', bob)).statusCode === 200);
    await eventually(async () => (await readyz(cached)) === 200 && (await readyz(direct)) === 200);
    // and the cache is trusted again once its channel answers
    await eventually(async () => cached.gw.app.sessions.resolver.cacheActive);
  });
});

describe('the cache trusts Redis only while Redis answers', () => {
  it('stops serving cached sessions as soon as a lookup of another session fails', async () => {
    const client = createRedisClient({ connection: { mode: 'standalone', url: redis.url }, commandTimeoutMs: COMMAND_TIMEOUT_MS });
    const store = new SessionStore(client, new KeyLayout(`sgoutage:${crypto.randomUUID()}:`));
    // no heartbeat within this test: only the failed lookup can tell the cache to step aside
    const resolver = new SessionResolver(store, { heartbeat: { intervalMs: 3_600_000 } });
    try {
      expect(await waitUntilReady(client, 5000)).toBe(true);
      await resolver.start();
      await eventually(async () => resolver.cacheActive);
      const opts = { idleTimeoutMs: 60_000, absoluteTimeoutMs: 600_000 };
      const alice = await store.create({ sub: 'alice', roles: ['user'], ...opts });
      const carol = await store.create({ sub: 'carol', roles: ['user'], ...opts });
      expect(await resolver.resolve(alice.token)).toMatchObject({ outcome: 'valid', source: 'redis' });
      expect(await resolver.resolve(alice.token)).toMatchObject({ outcome: 'valid', source: 'cache' });

      redis.pause();
      try {
        // carol is not cached: her lookup times out…
        expect((await resolver.resolve(carol.token)).outcome).toBe('store_error');
        // …and from that moment alice, cached a moment ago, is refused as well
        expect(resolver.cacheActive).toBe(false);
        expect((await resolver.resolve(alice.token)).outcome).toBe('store_error');
      } finally {
        redis.resume();
      }
      // the first answer from Redis puts the cache back in charge
      expect(await resolver.resolve(alice.token)).toMatchObject({ outcome: 'valid', source: 'redis' });
      expect(resolver.cacheActive).toBe(true);
      expect(await resolver.resolve(alice.token)).toMatchObject({ outcome: 'valid', source: 'cache' });
    } finally {
      await resolver.stop();
      await client.quit();
    }
  });
});

describe('Redis killed (the connection drops)', () => {
  it('answers 503 without forwarding, keeps auth: none routes up, and recovers after a restart', async () => {
    const alice = await cached.login('alice', ['user']);
    const bob = await direct.login('bob', ['user']);
    expect((await get(cached, '/api/orders/1', alice)).statusCode).toBe(200);
    expect((await get(direct, '/api/orders/1', bob)).statusCode).toBe(200);
    up.clear();

    await redis.kill();
    // the process is gone; a request racing the gateway's read of the closed socket is as
    // good as one sent just before the kill, so start once the gateway has seen it
    for (const t of [cached, direct]) await eventually(async () => t.gw.app.sessions.redis.status !== 'ready');
    for (const [t, token] of [[cached, alice], [direct, bob]] as const) {
      // a cached session is not served either: the invalidation channel is gone with it
      expectStoreUnavailable(await get(t, '/api/orders/1', token));
      expectStoreUnavailable(await get(t, '/admin/x', token));
      expect((await get(t, '/public/x')).statusCode).toBe(200);
      expect(await readyz(t)).toBe(503);
    }
    // an optional route needs the store too when a cookie is sent: it does not guess
    expectStoreUnavailable(await get(cached, '/opt/x', alice));
    expect(forwardedOrders()).toEqual([]);
    expect(up.received.map((r) => r.url)).toEqual(['/public/x', '/public/x']);

    await redis.restart();
    // no gateway restart: the clients reconnect on their own
    for (const t of [cached, direct]) {
      expect(await waitUntilReady(t.gw.app.sessions.redis, 5000)).toBe(true);
      expect(await waitUntilReady(t.redis, 5000)).toBe(true);
    }
    // this Redis keeps nothing on disk: old sessions are gone (401, not 503), new ones work
    for (const [t, token] of [[cached, alice], [direct, bob]] as const) {
      expect((await get(t, '/api/orders/1', token)).statusCode).toBe(401);
      const fresh = await t.login('carol', ['user']);
      expect((await get(t, '/api/orders/1', fresh)).statusCode).toBe(200);
      await eventually(async () => (await readyz(t)) === 200);
    }
    // and the cache comes back on once the invalidation channel is subscribed again
    await eventually(async () => cached.gw.app.sessions.resolver.cacheActive);
  });
});
