import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ApiKeyStore, KeyLayout, SessionStore } from '@sessiongate/session';
import { routesYaml, startTestGateway, type TestGateway } from './support/gateway.js';
import { startUpstream, type Upstream } from './support/upstream.js';
import { startWsUpstream, wsConnect, type WsClientResult, type WsUpstream } from './support/websocket.js';

// A WebSocket opened with an API key ends when the key is revoked, within 1 s, on a gateway
// with its cache on (the invalidation reaches the tunnel) and one with it off (open tunnels
// are re-checked against the key's record in Redis). Another key's tunnel stays open.

const REVOCATION_LIMIT_MS = 1000;

describe('open WebSockets and API key revocation', () => {
  let ws: WsUpstream;
  let up: Upstream;
  let cached: TestGateway;
  let uncached: TestGateway;
  let keys: ApiKeyStore;

  beforeAll(async () => {
    const redisUrl = inject('redisUrl');
    ws = await startWsUpstream();
    up = await startUpstream('svc');
    const routes = routesYaml(
      { public: up.url },
      `  - name: live
    prefix: /live
    upstream: ${ws.url}
    roles: [user]
    credentials: [api_key]
`,
    );
    cached = await startTestGateway({ redisUrl, routes, env: { SESSION_CACHE_TTL: '60s' } });
    uncached = await startTestGateway({ redisUrl, routes, keyPrefix: cached.keyPrefix, keysJson: cached.keysJson, env: { SESSION_CACHE: 'false' } });
    keys = new ApiKeyStore(new SessionStore(cached.redis, new KeyLayout(cached.keyPrefix)));
  });

  afterAll(async () => {
    await uncached?.close();
    await cached?.close();
    await ws?.close();
    await up?.close();
  });

  async function tunnel(g: TestGateway, key: string): Promise<WsClientResult> {
    const port = await g.listen();
    const res = await wsConnect(port, '/live/room', [['Authorization', `Bearer ${key}`]]);
    expect(res.status, res.body).toBe(101);
    expect(await res.next()).toMatchObject({ text: 'hello' });
    return res;
  }

  it('closes the revoked key’s tunnels within 1 s, cache on and off; another key’s stays open', async () => {
    const mint = (sub: string) => keys.create({ sub, name: 'ws', scope: null, ownerRoles: ['user'], expiresAt: null });
    const [revoked, other] = await Promise.all([mint('robot-a'), mint('robot-b')]);
    const tunnels = [await tunnel(cached, revoked.key), await tunnel(uncached, revoked.key)];
    const survivors = [await tunnel(cached, other.key), await tunnel(uncached, other.key)];
    const t0 = performance.now();
    expect(await keys.revoke('robot-a', revoked.record.id)).toBe(true);
    for (const res of tunnels) {
      expect(await res.next(5 * REVOCATION_LIMIT_MS)).toBeNull();
      expect(performance.now() - t0).toBeLessThan(REVOCATION_LIMIT_MS);
    }
    // past a re-check period of the uncached gateway (500 ms): a live key's tunnel stays open
    await new Promise((r) => setTimeout(r, 700));
    for (const survivor of survivors) {
      survivor.send('still here');
      expect(await survivor.next()).toMatchObject({ text: 'echo:still here' });
      survivor.close();
    }
  });
});
