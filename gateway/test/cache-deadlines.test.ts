import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { KeyLayout, SessionStore, createRedisClient, waitUntilReady, type RedisClient } from '@sessiongate/session';
import { SessionResolver } from '../src/session/resolver.js';
import { cookieToken, startTestAuth, type TestAuth } from '../../test/support/auth-service.js';
import { routesYaml, startTestGateway, type TestGateway } from '../../test/support/gateway.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';

// A cached session never outlives the deadlines Redis holds it to, whatever the cache TTL:
// its idle deadline as this gateway last pushed it, and its absolute deadline. With the
// clock moved by the test (the key in Redis still lives), then for real through a gateway:
// idle timeout 3 s, cache TTL 5 s, a request 4 s after the last one is refused.

const MIN = 60_000;

describe('cache deadlines (the clock moved by the test)', () => {
  let redis: RedisClient;
  beforeAll(async () => {
    redis = createRedisClient({ connection: { mode: 'standalone', url: inject('redisUrl') } });
    expect(await waitUntilReady(redis, 5000)).toBe(true);
  });
  afterAll(async () => {
    await redis?.quit();
  });

  async function cached(idleTimeoutMs: number, absoluteTimeoutMs: number) {
    const clock = { now: Date.now() };
    const store = new SessionStore(redis, new KeyLayout(`sgdeadline:${randomUUID()}:`));
    // refreshes never due within the test: only the deadlines can send the lookup to Redis
    const resolver = new SessionResolver(store, { cache: { ttlMs: 60 * MIN }, refreshFraction: 0.99, now: () => clock.now });
    await resolver.start();
    for (let i = 0; i < 500 && !resolver.cacheActive; i++) await new Promise((r) => setTimeout(r, 10));
    const s = await store.create({ sub: 'alice', roles: ['user'], idleTimeoutMs, absoluteTimeoutMs }, clock.now);
    await new Promise((r) => setTimeout(r, 20));
    expect(await resolver.resolve(s.token)).toMatchObject({ outcome: 'valid', source: 'redis' });
    expect(await resolver.resolve(s.token)).toMatchObject({ outcome: 'valid', source: 'cache' });
    return { clock, resolver, s };
  }

  it('asks Redis again once the idle deadline this gateway last pushed has passed', async () => {
    const { clock, resolver, s } = await cached(10 * MIN, 60 * MIN);
    try {
      clock.now = s.record.createdAt + 9 * MIN;
      expect(await resolver.resolve(s.token)).toMatchObject({ outcome: 'valid', source: 'cache' });
      clock.now = s.record.createdAt + 10 * MIN;
      // the key still lives in Redis (real time barely moved): read again, not served from memory
      expect(await resolver.resolve(s.token)).toMatchObject({ outcome: 'valid', source: 'redis' });
    } finally {
      await resolver.stop();
    }
  });

  it('refuses at the absolute deadline, even with the entry cached', async () => {
    const { clock, resolver, s } = await cached(10 * MIN, 15 * MIN);
    try {
      clock.now = s.record.createdAt + 9 * MIN;
      expect(await resolver.resolve(s.token)).toMatchObject({ outcome: 'valid', source: 'cache' });
      clock.now = s.record.absoluteExpiresAt;
      expect((await resolver.resolve(s.token)).outcome).toBe('expired');
    } finally {
      await resolver.stop();
    }
  });
});

describe('cache deadlines through a gateway (real time)', () => {
  let up: Upstream;
  let auth: TestAuth;
  let gw: TestGateway;

  beforeAll(async () => {
    const redisUrl = inject('redisUrl');
    up = await startUpstream('svc');
    auth = await startTestAuth({ redisUrl, users: { alice: { password: 'alice-password-1', roles: ['user'] } }, env: { SESSION_IDLE_TIMEOUT: '3s' } });
    await auth.svc.app.listen({ port: 0, host: '127.0.0.1' });
    const authUrl = `http://127.0.0.1:${(auth.svc.app.server.address() as { port: number }).port}`;
    gw = await startTestGateway({
      redisUrl,
      routes: routesYaml({ public: up.url, auth: authUrl }),
      keyPrefix: auth.keyPrefix,
      keysJson: auth.keysJson,
      env: { SESSION_CACHE_TTL: '5s' },
    });
  });
  afterAll(async () => {
    await gw?.close();
    await auth?.close();
    await up?.close();
  });

  it('idle timeout 3 s, cache TTL 5 s: a request 4 s after the last one is 401', async () => {
    const login = await gw.gw.app.inject({ method: 'POST', url: '/auth/login', payload: { username: 'alice', password: 'alice-password-1' } });
    expect(login.statusCode, login.body).toBe(204);
    const cookie = `sid=${cookieToken(login)}`;
    expect((await gw.gw.app.inject({ url: '/api/orders/1', headers: { cookie } })).statusCode).toBe(200);
    expect((await gw.gw.app.inject({ url: '/api/orders/1', headers: { cookie } })).statusCode).toBe(200);
    await new Promise((r) => setTimeout(r, 4000));
    expect((await gw.gw.app.inject({ url: '/api/orders/1', headers: { cookie } })).statusCode).toBe(401);
  });
});
