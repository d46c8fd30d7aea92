import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyLayout, SessionStore, sessionRef, type SessionRef } from '@sessiongate/session';
import { cookieToken, newKeysJson, startTestAuth, writeUsersFile, type TestAuth } from '../../test/support/auth-service.js';
import { routesYaml, startTestGateway, type TestGateway } from '../../test/support/gateway.js';
import { nodeKeys, startRedisCluster, type RedisCluster } from '../../test/support/redis-cluster.js';
import { freePort } from '../../test/support/redis-server.js';
import { headerValues, startUpstream, type Received, type Upstream } from '../../test/support/upstream.js';

// Sessions on a 3-master Redis Cluster: every command the gateway and the auth service send
// names one key, so login, access, logout and logout-all work whichever master holds a key,
// and every master tells every gateway of a change to a session key it holds (tracking is
// per node), and a master that dies stops the cache at once. Session data writes land on the
// master that holds the session, and reach every gateway's cache the same way.

const USERS = {
  alice: { password: 'alice-password-1', roles: ['user'] },
  bob: { password: 'bob-password-1', roles: ['user', 'admin'] },
  carol: { password: 'carol-password-1', roles: ['user'] },
};

let cluster: RedisCluster;
let up: Upstream;
let auth: TestAuth;
let gwA: TestGateway;
let gwB: TestGateway;
let data: Cluster;
let keys: KeyLayout;
let usersDir: string;
/** Gateway A's session data endpoint. */
let dataUrl: string;

/** A route whose upstream keeps a cart in the session; the orders route reads it. */
const SHOP_ROUTE = (url: string) => `  - name: shop
    prefix: /shop
    upstream: ${url}
    roles: [user]
    sessionData: { namespace: cart, readers: [orders] }
`;

beforeAll(async () => {
  cluster = await startRedisCluster(3);
  up = await startUpstream('svc');
  usersDir = mkdtempSync(path.join(tmpdir(), 'sg-cluster-users-'));
  const usersFile = await writeUsersFile(USERS, usersDir);
  const env = { REDIS_CLUSTER_NODES: cluster.seeds };
  // the harnesses' own standalone clients point at one node; this file arranges and inspects
  // data with a Cluster client of its own instead
  const redisUrl = `redis://127.0.0.1:${cluster.nodes[0]!.port}`;
  auth = await startTestAuth({ redisUrl, usersFile, keysJson: newKeysJson(), env });
  await auth.svc.app.listen({ port: 0, host: '127.0.0.1' });
  const authUrl = `http://127.0.0.1:${(auth.svc.app.server.address() as { port: number }).port}`;
  const routes = routesYaml({ public: up.url, auth: authUrl }, SHOP_ROUTE(up.url));
  // long cache TTL: only an invalidation message can end a cached session within the test
  const gwEnv = { ...env, SESSION_CACHE_TTL: '60s' };
  gwA = await startTestGateway({
    redisUrl,
    routes,
    env: { ...gwEnv, SESSION_DATA_PORT: String(await freePort()) },
    keyPrefix: auth.keyPrefix,
    keysJson: auth.keysJson,
  });
  gwB = await startTestGateway({ redisUrl, routes, env: gwEnv, keyPrefix: auth.keyPrefix, keysJson: auth.keysJson });
  dataUrl = `${await gwA.gw.sessionData!.listen({ port: 0, host: '127.0.0.1' })}/_sessiongate/session-data`;
  data = cluster.client();
  keys = new KeyLayout(auth.keyPrefix);
}, 60_000);

afterAll(async () => {
  // the cluster goes away as a whole: close the apps, not the harnesses' key cleanup
  const closing = [gwA, gwB].map(async (g) => {
    await g?.gw.close();
    g?.redis.disconnect();
  });
  await Promise.allSettled(closing);
  if (auth) {
    await auth.svc.close().catch(() => undefined);
    auth.redis.disconnect();
  }
  await up?.close();
  await cluster?.stop();
  if (usersDir) rmSync(usersDir, { recursive: true, force: true });
});

async function login(g: TestGateway, user: keyof typeof USERS): Promise<string> {
  const res = await g.gw.app.inject({ method: 'POST', url: '/auth/login', payload: { username: user, password: USERS[user].password } });
  expect(res.statusCode, res.body).toBe(204);
  return cookieToken(res);
}

function access(g: TestGateway, token: string) {
  return g.gw.app.inject({ url: '/api/orders/1', headers: { cookie: `sid=${token}` } });
}

function post(g: TestGateway, url: string, token: string) {
  return g.gw.app.inject({ method: 'POST', url, headers: { cookie: `sid=${token}`, 'sec-fetch-site': 'same-origin' } });
}

/** Which master (index) holds each key, by asking every master which of the keys it has. */
async function sessionKeysPerNode(): Promise<string[][]> {
  return Promise.all(cluster.nodes.map((_, i) => nodeKeys(cluster.node(i), `${keys.prefix}s:*`)));
}

/** Polls every `pollMs` until the token is refused; resolves the time it took. */
async function msUntilRefused(g: TestGateway, token: string, limitMs = 3000, pollMs = 50): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    const res = await access(g, token);
    const elapsed = performance.now() - t0;
    if (res.statusCode === 401) return elapsed;
    expect(res.statusCode).toBe(200);
    if (elapsed > limitMs) throw new Error(`still ${res.statusCode} after ${Math.round(elapsed)} ms`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** The claims of the X-Session an upstream received. */
function claimsOf(rec: Received): Record<string, unknown> {
  const header = rec.headers['x-session'];
  expect(typeof header).toBe('string');
  return JSON.parse(Buffer.from((header as string).split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** How many gateway tracking connections (broadcast, subscribed) each master holds. */
async function trackingPerNode(): Promise<number[]> {
  return Promise.all(
    cluster.nodes.map(async (_, i) => {
      const list = (await cluster.node(i).client('LIST')) as string;
      return list.split('\n').filter((l) => l.includes('name=sessiongate-tracking') && /\bflags=\w*t\w*B/.test(l) && /\bsub=1\b/.test(l))
        .length;
    }),
  );
}

/** A session on each master (users picked until every master holds one): [master, ref, token]. */
async function sessionOnEachMaster(): Promise<[number, SessionRef, string][]> {
  const store = new SessionStore(data, keys);
  const found = new Map<number, [number, SessionRef, string]>();
  for (let n = 0; found.size < cluster.nodes.length && n < 200; n++) {
    const s = await store.create({ sub: `spread-${n}`, roles: ['user'], idleTimeoutMs: 600_000, absoluteTimeoutMs: 3_600_000 });
    const perNode = await sessionKeysPerNode();
    const i = perNode.findIndex((list) => list.includes(keys.session(s.ref)));
    if (!found.has(i)) found.set(i, [i, s.ref, s.token]);
  }
  expect(found.size).toBe(cluster.nodes.length);
  return [...found.values()];
}

describe('on a 3-master Redis Cluster', () => {
  it('logs in, forwards the identity, lists, and logs out through the auth service', async () => {
    const bad = await gwA.gw.app.inject({ method: 'POST', url: '/auth/login', payload: { username: 'alice', password: 'wrong' } });
    expect(bad.statusCode).toBe(401);
    expect(bad.json().error).toBe('invalid_credentials');

    const token = await login(gwA, 'alice');
    up.clear();
    const res = await access(gwB, token);
    expect(res.statusCode).toBe(200);
    expect(headerValues(up.last(), 'x-session')).toHaveLength(1);

    const list = await gwA.gw.app.inject({ url: '/auth/sessions', headers: { cookie: `sid=${token}` } });
    expect(list.statusCode).toBe(200);
    expect(JSON.stringify(list.json())).toContain('"current":true');

    expect((await post(gwA, '/auth/logout', token)).statusCode).toBe(204);
    // both gateways hold the session in their caches: Redis reports the deletion to them
    expect(await msUntilRefused(gwA, token, 1000)).toBeLessThan(1000);
    expect(await msUntilRefused(gwB, token, 1000)).toBeLessThan(1000);
    expect(await data.exists(keys.session(sessionRef(token)))).toBe(0);
  });

  it('spreads users over every master and keeps each user\'s sessions and index on one', async () => {
    // thirty users, one session each, written the way the auth service writes them
    const store = new SessionStore(data, keys);
    const opts = { roles: ['user'], idleTimeoutMs: 60_000, absoluteTimeoutMs: 120_000 };
    const created = [];
    for (let i = 0; i < 30; i++) created.push(await store.create({ sub: `spread-${i}`, ...opts }));
    const perNode = await sessionKeysPerNode();
    const counts = perNode.map((k) => k.length);
    console.log(`[cluster] 30 users over 3 masters: ${counts.join(' / ')} session keys`);
    for (const c of counts) expect(c).toBeGreaterThan(0);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(30);
    for (const c of created) await store.destroyAll(c.record.sub);

    // through the auth service: every session of a user sits on the master of its index
    const users = ['alice', 'bob', 'carol'] as const;
    const tokens: string[] = [];
    for (let i = 0; i < 12; i++) tokens.push(await login(i % 2 ? gwA : gwB, users[i % 3]!));
    const indexes = await Promise.all(cluster.nodes.map((_, n) => nodeKeys(cluster.node(n), `${keys.prefix}i:*`)));
    const keysNow = await sessionKeysPerNode();
    for (const [i, token] of tokens.entries()) {
      const node = keysNow.findIndex((k) => k.includes(keys.session(sessionRef(token))));
      expect(node).toBeGreaterThanOrEqual(0);
      expect(indexes[node]).toContain(keys.userIndex(users[i % 3]!));
    }
    // every one of them resolves through either gateway, whichever master holds it
    for (const [i, token] of tokens.entries()) expect((await access(i % 2 ? gwB : gwA, token)).statusCode).toBe(200);
    for (const u of users) await store.destroyAll(u);
  });

  it('logs out everywhere: every session of the user ends, on every master and every gateway', async () => {
    const tokens: string[] = [];
    for (let i = 0; i < 9; i++) tokens.push(await login(gwA, 'bob'));
    const carol = await login(gwA, 'carol');
    const holders = new Set(
      (await sessionKeysPerNode()).flatMap((k, node) => (tokens.some((t) => k.includes(keys.session(sessionRef(t)))) ? [node] : [])),
    );
    // one user's sessions share the slot of the user's index: one script ends them all at once
    expect(holders.size).toBe(1);
    // warm both gateways' caches
    for (const t of tokens) {
      expect((await access(gwA, t)).statusCode).toBe(200);
      expect((await access(gwB, t)).statusCode).toBe(200);
    }

    expect((await post(gwB, '/auth/logout-all', tokens[4]!)).statusCode).toBe(204);
    for (const t of tokens) {
      expect(await msUntilRefused(gwA, t, 1000)).toBeLessThan(1000);
      expect(await msUntilRefused(gwB, t, 1000)).toBeLessThan(1000);
    }
    expect(await data.exists(keys.userIndex('bob'))).toBe(0);
    for (const t of tokens) expect(await data.exists(keys.session(sessionRef(t)))).toBe(0);
    // another user's session is untouched
    expect((await access(gwA, carol)).statusCode).toBe(200);
  });

  it('moves an index of the previous release (named by the user id) on the master holding it: logout everywhere still ends every session', async () => {
    const tokens: string[] = [];
    for (let i = 0; i < 3; i++) tokens.push(await login(gwA, 'alice'));
    // what the previous release left: the same sorted set under the user id, in the same slot
    expect(await data.rename(keys.userIndex('alice'), keys.legacyUserIndex('alice'))).toBe('OK');
    for (const t of tokens) expect((await access(gwB, t)).statusCode).toBe(200);
    expect((await post(gwB, '/auth/logout-all', tokens[1]!)).statusCode).toBe(204);
    for (const t of tokens) expect(await msUntilRefused(gwA, t, 1000)).toBeLessThan(1000);
    expect(await data.exists(keys.legacyUserIndex('alice'))).toBe(0);
    expect(await data.exists(keys.userIndex('alice'))).toBe(0);
    for (const t of tokens) expect(await data.exists(keys.session(sessionRef(t)))).toBe(0);
  });

  it('has every master tell every gateway of a change to a session key, whoever makes it', async () => {
    // tracking is per node: each gateway holds one tracking connection on every master
    const tracking = await trackingPerNode();
    console.log(`[cluster] gateway tracking connections per master: ${tracking.join(' / ')}`);
    expect(tracking).toEqual([2, 2, 2]);

    for (const [i, ref, token] of await sessionOnEachMaster()) {
      expect((await access(gwB, token)).statusCode).toBe(200);
      expect((await access(gwB, token)).statusCode).toBe(200);
      // deleted behind sessiongate's back, straight on the node that holds it
      await cluster.node(i).del(keys.session(ref));
      // fine-grained polling: this measures the delivery itself
      const ms = await msUntilRefused(gwB, token, 1000, 2);
      console.log(`[cluster] DEL on master ${i} honoured by gateway B after ${ms.toFixed(1)} ms`);
      expect(ms).toBeLessThan(1000);
    }
  });

  it('stores a data write on whichever master holds the session, and a gateway with a warm cache sees it within 1 s', async () => {
    expect(gwB.gw.app.sessions.resolver.cacheActive).toBe(true);
    for (const [i, ref, token] of await sessionOnEachMaster()) {
      // gateway B holds the session in its cache, without data, before the write
      expect((await access(gwB, token)).statusCode).toBe(200);
      up.clear();
      expect((await access(gwB, token)).statusCode).toBe(200);
      expect(claimsOf(up.last()).sg_data).toBeUndefined();

      // the shop upstream writes with the X-Session gateway A sent it
      up.clear();
      expect((await gwA.gw.app.inject({ url: '/shop/cart', headers: { cookie: `sid=${token}` } })).statusCode).toBe(200);
      const xSession = up.last().headers['x-session'] as string;
      const cart = { id: `c-${i}`, items: i + 1 };
      const t0 = performance.now();
      const res = await fetch(dataUrl, { method: 'PATCH', headers: { 'content-type': 'application/json', 'x-session': xSession }, body: JSON.stringify(cart) });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ namespace: 'cart' });
      // in the record, on the master that holds the session
      const raw = (await cluster.node(i).get(keys.session(ref)))!;
      expect(JSON.parse(raw.slice(raw.indexOf('\n') + 1))).toEqual({ cart });

      // that master tells gateway B, whose cached copy has no data
      let seen: unknown;
      let ms = 0;
      for (;;) {
        up.clear();
        expect((await access(gwB, token)).statusCode).toBe(200);
        seen = claimsOf(up.last()).sg_data;
        ms = performance.now() - t0;
        if (seen !== undefined || ms > 1000) break;
        await new Promise((r) => setTimeout(r, 2));
      }
      console.log(`[cluster] data write on master ${i} seen by gateway B after ${ms.toFixed(1)} ms`);
      expect(seen).toEqual({ cart });
      expect(ms).toBeLessThan(1000);
    }
  });

  it('answers /readyz 200 on the Cluster', async () => {
    const ready = await gwA.gw.ops.inject({ url: '/readyz' });
    expect(ready.statusCode).toBe(200);
  });

  it('never serves a session stale across a slot migration', async () => {
    const sessions = await sessionOnEachMaster();
    const [from, ref, token] = sessions[0]!;
    const to = (from + 1) % cluster.nodes.length;
    const key = keys.session(ref);
    expect((await access(gwB, token)).statusCode).toBe(200);
    expect((await access(gwB, token)).statusCode).toBe(200);
    const a = cluster.node(from);
    const b = cluster.node(to);
    const slot = Number(await a.cluster('KEYSLOT', key));
    const idA = String(await a.cluster('MYID'));
    const idB = String(await b.cluster('MYID'));
    await b.cluster('SETSLOT', slot, 'IMPORTING', idA);
    await a.cluster('SETSLOT', slot, 'MIGRATING', idB);
    const moving = (await a.cluster('GETKEYSINSLOT', slot, 1000)) as string[];
    expect(moving).toContain(key);
    await a.migrate('127.0.0.1', cluster.nodes[to]!.port, '', 0, 5000, 'KEYS', ...moving);
    for (let i = 0; i < cluster.nodes.length; i++) await cluster.node(i).cluster('SETSLOT', slot, 'NODE', idB);
    // the session still stands, now on its new master
    for (let i = 0; i < 50 && (await access(gwB, token)).statusCode !== 200; i++) await new Promise((r) => setTimeout(r, 20));
    expect((await access(gwB, token)).statusCode).toBe(200);
    expect((await access(gwB, token)).statusCode).toBe(200);
    // ended on the new master, behind sessiongate's back: announced there
    await b.del(key);
    const ms = await msUntilRefused(gwB, token, 1000, 2);
    console.log(`[cluster] DEL after the slot moved from master ${from} to ${to} honoured after ${ms.toFixed(1)} ms`);
    expect(ms).toBeLessThan(1000);
  });

  // last: it takes a master down for good
  it('stops serving from memory at once when a master dies, and never serves its sessions stale', async () => {
    const sessions = await sessionOnEachMaster();
    const [victim, , token] = sessions[0]!;
    expect((await access(gwA, token)).statusCode).toBe(200);
    const resolvers = [gwA, gwB].map((g) => g.gw.app.sessions.resolver);
    expect(resolvers.every((r) => r.cacheActive)).toBe(true);
    await cluster.nodes[victim]!.kill();
    const t0 = performance.now();
    while (resolvers.some((r) => r.cacheActive) && performance.now() - t0 < 1000) await new Promise((r) => setTimeout(r, 5));
    console.log(`[cluster] cache bypassed ${(performance.now() - t0).toFixed(1)} ms after master ${victim} died`);
    expect(resolvers.some((r) => r.cacheActive)).toBe(false);
    // its sessions cannot be read: refused with 503, never served from memory
    expect((await access(gwA, token)).statusCode).toBe(503);
  });
});
