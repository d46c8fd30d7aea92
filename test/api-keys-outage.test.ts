import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ApiKeyStore, KeyLayout, SessionStore } from '@sessiongate/session';
import { routesYaml, startTestGateway, type TestGateway } from './support/gateway.js';
import { startRedisServer, type RedisServer } from './support/redis-server.js';
import { startUpstream, type Upstream } from './support/upstream.js';

// An API key with Redis gone: 503 session_store_unavailable, nothing forwarded, even for a
// key the gateway held a moment before (the invalidation channel went with Redis).

describe('API keys while Redis is down', () => {
  let redis: RedisServer;
  let up: Upstream;
  let t: TestGateway;

  beforeAll(async () => {
    redis = await startRedisServer();
    up = await startUpstream('svc');
    const routes = routesYaml({ public: up.url }, `  - name: machine\n    prefix: /machine\n    upstream: ${up.url}\n    credentials: [api_key]\n`);
    t = await startTestGateway({ redisUrl: redis.url, routes, env: { SESSION_CACHE_TTL: '60s' } });
  });

  afterAll(async () => {
    await t?.gw.close();
    t?.redis.disconnect();
    await up?.close();
    await redis?.stop();
  });

  it('fails closed with 503 and forwards nothing', async () => {
    const { key } = await new ApiKeyStore(new SessionStore(t.redis, new KeyLayout(t.keyPrefix))).create({
      sub: 'robot',
      name: 'outage',
      scope: null,
      ownerRoles: ['user'],
      expiresAt: null,
    });
    const get = () => t.gw.app.inject({ method: 'GET', url: '/machine/x', headers: { authorization: `Bearer ${key}` }, remoteAddress: '10.4.0.1' });
    expect((await get()).statusCode).toBe(200);
    up.clear();
    await redis.kill();
    await vi.waitFor(() => expect(t.gw.app.sessions.redis.status).not.toBe('ready'), { timeout: 5000 });
    const res = await get();
    expect(res.statusCode).toBe(503);
    expect(res.json().error).toBe('session_store_unavailable');
    expect(up.received).toEqual([]);
  });
});
