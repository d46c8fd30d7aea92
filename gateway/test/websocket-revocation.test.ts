import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestAuth, type TestAuth } from '../../test/support/auth-service.js';
import { routesYaml, startTestGateway, type TestGateway } from '../../test/support/gateway.js';
import { startRedisServer, type RedisServer } from '../../test/support/redis-server.js';
import { sessionRef } from '@sessiongate/session';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';
import { loginThrough } from '../../test/support/through-gateway.js';
import { startWsUpstream, wsConnect, type WsClientResult, type WsUpstream } from '../../test/support/websocket.js';

// A logout ends the session's open WebSockets too, within the 1 s every revocation is held
// to: on a gateway with its cache on (the invalidation message reaches the tunnel), and on
// one with the cache off (no subscription: open tunnels are re-checked against Redis).
// Another user's tunnel stays open. And a revocation lost while the invalidation channel
// was down still ends the tunnel: the sessions of open tunnels are read again once the
// channel is back.

const USERS = {
  alice: { password: 'alice-password-1', roles: ['user'] },
  bob: { password: 'bob-password-1', roles: ['user'] },
};
const REVOCATION_LIMIT_MS = 1000;

let ws: WsUpstream;
let up: Upstream;
let auth: TestAuth;
let cached: TestGateway;
let uncached: TestGateway;

beforeAll(async () => {
  const redisUrl = inject('redisUrl');
  ws = await startWsUpstream();
  up = await startUpstream('svc');
  auth = await startTestAuth({ redisUrl, users: USERS });
  const authUrl = await auth.listen();
  const routes = routesYaml(
    { public: up.url, auth: authUrl },
    `  - name: live
    prefix: /live
    upstream: ${ws.url}
    roles: [user]
`,
  );
  const common = { redisUrl, keyPrefix: auth.keyPrefix, keysJson: auth.keysJson, routes };
  // a long cache TTL: only the invalidation can end a cached session this fast
  cached = await startTestGateway({ ...common, env: { SESSION_CACHE_TTL: '60s' } });
  uncached = await startTestGateway({ ...common, env: { SESSION_CACHE: 'false' } });
});

afterAll(async () => {
  await uncached?.close();
  await cached?.close();
  await auth?.close();
  await ws?.close();
  await up?.close();
});

function login(user: keyof typeof USERS): Promise<string> {
  return loginThrough(cached, user, USERS[user].password);
}

async function tunnel(g: TestGateway, token: string): Promise<WsClientResult> {
  const port = await g.listen();
  const res = await wsConnect(port, '/live/room', [['Cookie', `sid=${token}`], ['Origin', `http://127.0.0.1:${port}`]]);
  expect(res.status, res.body).toBe(101);
  expect(await res.next()).toMatchObject({ text: 'hello' });
  return res;
}

/** Resolves how long after `since` the tunnel closed (next() answers null once it has). */
async function closedAfter(res: WsClientResult, since: number): Promise<number> {
  const frame = await res.next(5 * REVOCATION_LIMIT_MS);
  expect(frame).toBeNull();
  return performance.now() - since;
}

describe('open WebSockets and logout', () => {
  it("closes the logged-out session's tunnels within 1 s, with the cache on and off; another user's stays open", async () => {
    const alice = await login('alice');
    const bob = await login('bob');
    const aliceCached = await tunnel(cached, alice);
    const aliceUncached = await tunnel(uncached, alice);
    const bobCached = await tunnel(cached, bob);
    const bobUncached = await tunnel(uncached, bob);
    try {
      const t0 = performance.now();
      const logout = await cached.gw.app.inject({ method: 'POST', url: '/auth/logout', headers: { cookie: `sid=${alice}`, 'sec-fetch-site': 'same-origin' } });
      expect(logout.statusCode).toBe(204);
      const [a, b] = await Promise.all([closedAfter(aliceCached, t0), closedAfter(aliceUncached, t0)]);
      expect(a).toBeLessThan(REVOCATION_LIMIT_MS);
      expect(b).toBeLessThan(REVOCATION_LIMIT_MS);

      // bob's tunnels still carry messages, past another re-check period
      await new Promise((r) => setTimeout(r, 700));
      for (const res of [bobCached, bobUncached]) {
        res.send('still here');
        expect(await res.next()).toMatchObject({ text: 'echo:still here' });
      }
      // and alice cannot open a new one
      const port = await cached.listen();
      const again = await wsConnect(port, '/live/room', [['Cookie', `sid=${alice}`], ['Origin', `http://127.0.0.1:${port}`]]);
      expect(again.status).toBe(401);
    } finally {
      for (const res of [aliceCached, aliceUncached, bobCached, bobUncached]) res.close();
    }
  });
});

describe('open WebSockets and a lost invalidation', () => {
  let redis: RedisServer;
  let g: TestGateway;

  beforeAll(async () => {
    // a Redis of this test's own: its key-tracking connections are dropped on purpose
    redis = await startRedisServer();
    g = await startTestGateway({
      redisUrl: redis.url,
      routes: routesYaml({ public: up.url }, `  - name: live\n    prefix: /live\n    upstream: ${ws.url}\n    roles: [user]\n`),
      env: { SESSION_CACHE_TTL: '60s' },
    });
  });

  afterAll(async () => {
    await g?.close();
    await redis?.stop();
  });

  it('closes a tunnel whose session went away while the channel was down, once it is back', async () => {
    const alice = await g.login('alice', ['user']);
    const bob = await g.login('bob', ['user']);
    const aliceTunnel = await tunnel(g, alice);
    const bobTunnel = await tunnel(g, bob);
    try {
      // the invalidation connection drops, and the session ends while it is down
      await g.redis.call('client', 'kill', 'type', 'pubsub');
      await g.redis.del(g.store.keys.session(sessionRef(alice)));
      const t0 = performance.now();
      expect(await closedAfter(aliceTunnel, t0)).toBeLessThan(5 * REVOCATION_LIMIT_MS);
      for (let i = 0; i < 200 && !g.gw.app.sessions.resolver.cacheActive; i++) await new Promise((r) => setTimeout(r, 25));
      expect(g.gw.app.sessions.resolver.cacheActive).toBe(true);
      bobTunnel.send('still here');
      expect(await bobTunnel.next()).toMatchObject({ text: 'echo:still here' });
    } finally {
      aliceTunnel.close();
      bobTunnel.close();
    }
  });
});
