import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  KeyLayout,
  SessionStore,
  createRedisClient,
  waitUntilReady,
  type RedisClient,
} from '@sessiongate/session';
import { SessionResolver } from '../src/session/resolver.js';
import { startTestGateway, routesYaml } from '../../test/support/gateway.js';
import { startRedisServer, type RedisServer } from '../../test/support/redis-server.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';
import { commandCounts as counts, delta, requestPathCommands } from '../../test/support/redis-commands.js';

// The sliding idle expiry and the hard absolute one, on a real Redis with the resolver's
// clock in the test's hands: the key's TTL is pushed forward at most once per refresh
// interval, never past the absolute expiry; a session past it is refused even while its key
// lives; a refresh can never bring back a deleted session. And what a request costs in
// Redis commands, with and without the cache.

const MIN = 60_000;
const IDLE = 10 * MIN;
const ABSOLUTE = 60 * MIN;
const FRACTION = 0.1;
const INTERVAL = IDLE * FRACTION;

let server: RedisServer;
let redis: RedisClient;
let up: Upstream;

beforeAll(async () => {
  // private: INFO commandstats then counts this file's commands only
  server = await startRedisServer();
  redis = createRedisClient({ connection: { mode: 'standalone', url: server.url } });
  expect(await waitUntilReady(redis, 5000)).toBe(true);
  up = await startUpstream('svc');
});

afterAll(async () => {
  await redis?.quit();
  await up?.close();
  await server?.stop();
});

/** Calls per command on this file's server. */
const commandCounts = () => counts(redis);

/** Expiry refreshes between two snapshots: PEXPIRE, or GETEX when the refresh rides on a read. */
function refreshes(before: Map<string, number>, after: Map<string, number>): number {
  return delta(before, after, 'pexpire') + delta(before, after, 'getex');
}

/** A store and a resolver with a clock the test moves (no cache unless asked). */
function harness(o: { cache?: boolean } = {}) {
  const clock = { now: Date.now() };
  const client = createRedisClient({ connection: { mode: 'standalone', url: server.url } });
  const store = new SessionStore(client, new KeyLayout(`sgslide:${randomUUID()}:`));
  const resolver = new SessionResolver(store, { cache: { enabled: o.cache ?? false }, refreshFraction: FRACTION, now: () => clock.now });
  return {
    clock,
    store,
    resolver,
    /** Creates a session "now" on the test's clock. */
    async login(absoluteTimeoutMs = ABSOLUTE) {
      return store.create({ sub: 'alice', roles: ['user'], idleTimeoutMs: IDLE, absoluteTimeoutMs }, clock.now);
    },
    async close() {
      await resolver.stop();
      await client.quit();
    },
  };
}

let open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const h of open) await h.close();
  open = [];
});

function started<T extends { close(): Promise<void> }>(h: T): T {
  open.push(h);
  return h;
}

describe('sliding idle expiry', () => {
  it('pushes the key TTL forward at most once per refresh interval', async () => {
    const h = started(harness());
    await waitUntilReady(h.store.redis, 5000);
    const s = await h.login();
    const t0 = h.clock.now;
    const key = h.store.keys.session(s.ref);

    const before = await commandCounts();
    // within the first interval (measured from creation): reads only
    for (const at of [1_000, 10_000, INTERVAL / 2, INTERVAL - 1]) {
      h.clock.now = t0 + at;
      expect((await h.resolver.resolve(s.token)).outcome).toBe('valid');
    }
    const quiet = await commandCounts();
    expect(refreshes(before, quiet)).toBe(0);
    expect(delta(before, quiet, 'get')).toBe(4);

    // one interval in: one refresh, however many requests
    for (const at of [INTERVAL, INTERVAL + 1, INTERVAL + 1_000, 2 * INTERVAL - 1]) {
      h.clock.now = t0 + at;
      expect((await h.resolver.resolve(s.token)).outcome).toBe('valid');
    }
    // the refresh rode on the first read of the interval (GETEX PX): one command per request
    const once = await commandCounts();
    expect(refreshes(quiet, once)).toBe(1);
    expect(requestPathCommands(quiet, once)).toBe(4);
    // and it set the full idle timeout again (the absolute expiry is far)
    const pttl = await redis.pttl(key);
    expect(pttl).toBeGreaterThan(IDLE - 5_000);
    expect(pttl).toBeLessThanOrEqual(IDLE);

    // the next interval: the next refresh
    h.clock.now = t0 + 2 * INTERVAL;
    await h.resolver.resolve(s.token);
    await h.resolver.resolve(s.token);
    expect(refreshes(once, await commandCounts())).toBe(1);
    // never by rewriting the record
    expect(delta(before, await commandCounts(), 'set')).toBe(0);
  });

  it('never extends the key past the absolute expiry', async () => {
    const h = started(harness());
    await waitUntilReady(h.store.redis, 5000);
    const absolute = 15 * MIN;
    const s = await h.login(absolute);
    const key = h.store.keys.session(s.ref);
    expect(s.record.absoluteExpiresAt).toBe(h.clock.now + absolute);

    // 12 minutes in, 3 are left: the idle timeout (10) may not be granted in full; each
    // refresh (one interval apart) sets at most what is left of the absolute lifetime
    for (const at of [12 * MIN, 13.5 * MIN, 14.6 * MIN]) {
      h.clock.now = s.record.createdAt + at;
      const before = await commandCounts();
      expect((await h.resolver.resolve(s.token)).outcome).toBe('valid');
      await h.resolver.resolve(s.token);
      expect(refreshes(before, await commandCounts())).toBe(1);
      const pttl = await redis.pttl(key);
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(s.record.absoluteExpiresAt - h.clock.now);
    }
  });

  it('refuses a session past its absolute expiry even while its key still exists, and removes it', async () => {
    const h = started(harness());
    await waitUntilReady(h.store.redis, 5000);
    const s = await h.login();
    const key = h.store.keys.session(s.ref);
    // the key lives on (Redis keeps real time, the clock says the session is over)
    h.clock.now = s.record.absoluteExpiresAt;
    expect(await redis.exists(key)).toBe(1);
    expect((await h.resolver.resolve(s.token)).outcome).toBe('expired');
    h.clock.now = s.record.absoluteExpiresAt + 1;
    // the first refusal removed the key: from then on the token is as unknown as any other
    const again = await h.resolver.resolve(s.token);
    expect(again.outcome).toBe('missing');
    expect(await redis.exists(key)).toBe(0);
  });

  it('cannot resurrect a session deleted while its refresh was due (store)', async () => {
    const h = started(harness());
    await waitUntilReady(h.store.redis, 5000);
    const s = await h.login();
    const key = h.store.keys.session(s.ref);
    // the record was read; logout deletes the key; then the refresh lands
    await redis.del(key);
    const before = await commandCounts();
    await h.store.touch(s.ref, s.record, s.record.createdAt + INTERVAL);
    const after = await commandCounts();
    expect(delta(before, after, 'pexpire')).toBe(1);
    expect(await redis.exists(key)).toBe(0);
    expect(requestPathCommands(before, after)).toBe(1);
  });

  it('cannot resurrect a session deleted while its refresh was due (a refresh riding on the read)', async () => {
    const h = started(harness());
    await waitUntilReady(h.store.redis, 5000);
    const s = await h.login();
    const key = h.store.keys.session(s.ref);
    expect((await h.resolver.resolve(s.token)).outcome).toBe('valid');
    // logout deletes the key; the next request is due a refresh, which it sends with its read
    await redis.del(key);
    h.clock.now = s.record.createdAt + INTERVAL;
    const before = await commandCounts();
    expect((await h.resolver.resolve(s.token)).outcome).toBe('missing');
    const after = await commandCounts();
    expect(delta(before, after, 'getex')).toBe(1);
    expect(requestPathCommands(before, after)).toBe(1);
    expect(await redis.exists(key)).toBe(0);
  });

  it('without the cache: an unchanged record keeps its slot (and the signed headers in it), a changed or deleted one does not', async () => {
    const h = started(harness());
    await waitUntilReady(h.store.redis, 5000);
    const s = await h.login();
    const first = await h.resolver.resolve(s.token);
    if (first.outcome !== 'valid') throw new Error(`expected a valid session, got ${first.outcome}`);
    first.session.slot.derived = 'signed';
    const same = await h.resolver.resolve(s.token);
    if (same.outcome !== 'valid') throw new Error(`expected a valid session, got ${same.outcome}`);
    // the same stored value: the same slot (headers signed for it stay usable)
    expect(same.session.slot).toBe(first.session.slot);
    expect(same.session.slot.derived).toBe('signed');

    // a role change rewrites the record: read afresh, nothing signed before is reused
    expect(await h.store.setRoles('alice', ['admin'], h.clock.now)).toBe(1);
    const changed = await h.resolver.resolve(s.token);
    if (changed.outcome !== 'valid') throw new Error(`expected a valid session, got ${changed.outcome}`);
    expect(changed.session.record.roles).toEqual(['admin']);
    expect(changed.session.slot).not.toBe(first.session.slot);
    expect(changed.session.slot.derived).toBeUndefined();

    await redis.del(h.store.keys.session(s.ref));
    expect((await h.resolver.resolve(s.token)).outcome).toBe('missing');
  });

  it('cannot resurrect a session deleted while its refresh was due (cached resolver)', async () => {
    const h = started(harness({ cache: true }));
    await waitUntilReady(h.store.redis, 5000);
    await h.resolver.start();
    const deadline = Date.now() + 5000;
    while (!h.resolver.cacheActive && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    expect(h.resolver.cacheActive).toBe(true);
    const s = await h.login();
    const key = h.store.keys.session(s.ref);
    expect(await h.resolver.resolve(s.token)).toMatchObject({ outcome: 'valid', source: 'redis' });

    // logout by another client: Redis tells this gateway, whose cache lets go at once
    await redis.del(key);
    for (let i = 0; i < 100 && h.resolver.cacheSize > 0; i++) await new Promise((r) => setTimeout(r, 10));
    const before = await commandCounts();
    h.clock.now = s.record.createdAt + INTERVAL;
    // the refresh that was due is not sent for a session that is gone, and nothing writes it back
    expect((await h.resolver.resolve(s.token)).outcome).toBe('missing');
    await new Promise((r) => setTimeout(r, 50));
    expect(await redis.exists(key)).toBe(0);
    expect(delta(before, await commandCounts(), 'set')).toBe(0);
    expect(delta(before, await commandCounts(), 'pexpire')).toBe(0);
  });

});

describe('steady-state Redis cost per request (one busy session)', () => {
  const N = 200;

  async function costPerRequest(env: Record<string, string>): Promise<number> {
    const t = await startTestGateway({ redisUrl: server.url, routes: routesYaml({ public: up.url }), env });
    try {
      const token = await t.login('alice', ['user']);
      // let the connections settle (handshakes, subscription) before counting
      await new Promise((r) => setTimeout(r, 50));
      const before = await commandCounts();
      for (let i = 0; i < N; i++) {
        const res = await t.gw.app.inject({ method: 'GET', url: `/api/orders/${i}`, headers: { cookie: `sid=${token}` } });
        expect(res.statusCode).toBe(200);
      }
      const after = await commandCounts();
      return requestPathCommands(before, after) / N;
    } finally {
      await t.close();
    }
  }

  it('costs at most one command per request without the cache', async () => {
    expect(await costPerRequest({ SESSION_CACHE: 'false' })).toBeLessThanOrEqual(1.0);
  });

  it('costs at most 0.05 commands per request with the cache', async () => {
    expect(await costPerRequest({})).toBeLessThanOrEqual(0.05);
  });
});
