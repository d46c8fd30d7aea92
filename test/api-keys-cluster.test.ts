import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ApiKeyStore, KeyLayout, SessionStore } from '@sessiongate/session';
import { routesYaml, startTestGateway, type TestGateway } from './support/gateway.js';
import { startRedisCluster, type RedisCluster } from './support/redis-cluster.js';
import { startUpstream, type Upstream } from './support/upstream.js';

// API keys on a 3-master Redis Cluster: every script names keys of the owner's slot only,
// so minting, listing, a role change and revoking all of a user's keys run as on one node.

describe('API keys on Redis Cluster', () => {
  let cluster: RedisCluster;
  let up: Upstream;
  let t: TestGateway;
  let keys: ApiKeyStore;

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    up = await startUpstream('svc');
    const routes = routesYaml(
      { public: up.url },
      `  - name: machine
    prefix: /machine
    upstream: ${up.url}
    roles: [reports]
    credentials: [api_key]
`,
    );
    t = await startTestGateway({
      redisUrl: `redis://127.0.0.1:${cluster.nodes[0]!.port}`,
      routes,
      env: { REDIS_CLUSTER_NODES: cluster.seeds, SESSION_CACHE_TTL: '60s' },
    });
    // the gateway's own Cluster client: a standalone one would be redirected (MOVED)
    keys = new ApiKeyStore(new SessionStore(t.gw.app.sessions.redis, new KeyLayout(t.keyPrefix)));
  }, 60_000);

  afterAll(async () => {
    await t?.gw.close();
    t?.redis.disconnect();
    await up?.close();
    await cluster?.stop();
  });

  const get = (key: string) => t.gw.app.inject({ method: 'GET', url: '/machine/x', headers: { authorization: `Bearer ${key}` }, remoteAddress: '10.3.0.1' });

  it('keys of many users are minted, listed, cut down and revoked within 1 s', async () => {
    const users = Array.from({ length: 12 }, (_, i) => `svc-${i}`);
    const minted = await Promise.all(
      users.map((sub) => keys.create({ sub, name: 'k', scope: ['reports'], ownerRoles: ['user', 'reports'], expiresAt: Date.now() + 3_600_000 })),
    );
    for (const m of minted) expect((await get(m.key)).statusCode).toBe(200);
    for (const sub of users) expect((await keys.list(sub)).map((k) => k.roles)).toEqual([['reports']]);

    expect(await keys.setOwnerRoles('svc-0', ['user'])).toBe(1);
    await vi.waitFor(async () => expect((await get(minted[0]!.key)).statusCode).toBe(403), { timeout: 1000, interval: 50 });

    expect(await keys.revokeAll('svc-1')).toBe(1);
    await vi.waitFor(async () => expect((await get(minted[1]!.key)).statusCode).toBe(401), { timeout: 1000, interval: 50 });
    expect(await keys.list('svc-1')).toEqual([]);
    // nobody else's key moved
    expect((await get(minted[2]!.key)).statusCode).toBe(200);
  });
});
