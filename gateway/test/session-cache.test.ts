import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  KeyLayout,
  SessionStore,
  createRedisClient,
  mintToken,
  waitUntilReady,
  type RedisClient,
} from '@sessiongate/session';
import { SessionResolver, type SessionResolverOptions } from '../src/session/resolver.js';
import { startRedisServer, type RedisServer } from '../../test/support/redis-server.js';
import { commandCounts as counts, delta } from '../../test/support/redis-commands.js';

// The gateway's local session cache against a real Redis: concurrent misses share one read,
// unknown tokens are remembered briefly, an invalidation that lands while a read is in flight
// keeps that read out of the cache, the refresh pace survives entries expiring and being
// swept, and what the cache keeps stays bounded (signed headers, the active-session count).

const MIN = 60_000;
const IDLE = 10 * MIN;
const INTERVAL = IDLE * 0.1;

let server: RedisServer;
let redis: RedisClient;

beforeAll(async () => {
  // private: INFO commandstats counts this file's commands only, and it may be paused
  server = await startRedisServer();
  redis = createRedisClient({ connection: { mode: 'standalone', url: server.url } });
  expect(await waitUntilReady(redis, 5000)).toBe(true);
});

afterAll(async () => {
  await redis?.quit();
  await server?.stop();
});

const commandCounts = () => counts(redis);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const h of open) await h.close();
  open = [];
});

/** A resolver with its cache on (subscribed), a clock the test moves, and its own key prefix. */
async function cachedResolver(opts: SessionResolverOptions = {}) {
  const clock = { now: Date.now() };
  const client = createRedisClient({ connection: { mode: 'standalone', url: server.url } });
  await waitUntilReady(client, 5000);
  const store = new SessionStore(client, new KeyLayout(`sgcache:${randomUUID()}:`));
  const resolver = new SessionResolver(store, { refreshFraction: 0.1, now: () => clock.now, ...opts });
  await resolver.start();
  for (let i = 0; i < 500 && !resolver.cacheActive; i++) await sleep(10);
  expect(resolver.cacheActive).toBe(true);
  const h = {
    clock,
    store,
    resolver,
    async login(sub = 'alice') {
      const s = await store.create({ sub, roles: ['user'], idleTimeoutMs: IDLE, absoluteTimeoutMs: 60 * MIN }, clock.now);
      // Redis announces the login's own write too: let that land before the first read
      await sleep(20);
      return s;
    },
    async close() {
      await resolver.stop();
      await client.quit();
    },
  };
  open.push(h);
  return h;
}

describe('session cache', () => {
  it('concurrent misses for one session share one Redis read, then it is served from memory', async () => {
    const h = await cachedResolver();
    const s = await h.login();
    const before = await commandCounts();
    const lookups = await Promise.all(Array.from({ length: 25 }, () => h.resolver.resolve(s.token)));
    expect(lookups.every((l) => l.outcome === 'valid' && l.source === 'redis')).toBe(true);
    expect(delta(before, await commandCounts(), 'get')).toBe(1);
    expect(await h.resolver.resolve(s.token)).toMatchObject({ outcome: 'valid', source: 'cache' });
    expect(delta(before, await commandCounts(), 'get')).toBe(1);
  });

  it('remembers an unknown token for the negative TTL, and a malformed one costs nothing', async () => {
    const h = await cachedResolver({ cache: { negativeTtlMs: 500 } });
    const unknown = mintToken("nobody");
    const before = await commandCounts();
    for (let i = 0; i < 50; i++) expect((await h.resolver.resolve(unknown)).outcome).toBe('missing');
    expect(delta(before, await commandCounts(), 'get')).toBe(1);
    for (let i = 0; i < 50; i++) expect((await h.resolver.resolve('not a token')).outcome).toBe('malformed');
    expect(delta(before, await commandCounts(), 'get')).toBe(1);
    // once the negative entry has expired, Redis is asked again (the session may exist now)
    await sleep(600);
    expect((await h.resolver.resolve(unknown)).outcome).toBe('missing');
    expect(delta(before, await commandCounts(), 'get')).toBe(2);
  });

  it('an invalidation that arrives while the read is in flight keeps that read out of the cache', async () => {
    // a heartbeat that a busy machine cannot miss: the read below must go through the cache
    const h = await cachedResolver({ heartbeat: { timeoutMs: 30_000 } });
    const s = await h.login();
    expect(h.resolver.cacheActive).toBe(true);
    // Redis paused: the read is sent and waits on the socket
    server.pause();
    let pending: ReturnType<SessionResolver['resolve']>;
    try {
      pending = h.resolver.resolve(s.token);
      await sleep(50);
      // logout elsewhere: the key goes and the message arrives. The DEL goes on the
      // resolver's own connection, behind its read and ahead of any read it makes after it:
      // Redis runs one connection's commands in order. (Sent on another connection, the DEL
      // could reach the resumed Redis after the resolver's second read.)
      void h.store.redis.del(h.store.keys.session(s.ref)).catch(() => undefined);
      h.resolver.invalidate([s.ref.sid]);
    } finally {
      server.resume();
    }
    // the read that began before the logout is not trusted: asked again, the session is gone
    expect((await pending).outcome).toBe('missing');
    expect(h.resolver.cacheSize).toBe(0);
    expect((await h.resolver.resolve(s.token)).outcome).toBe('missing');
  });

  it('keeps the refresh pace when an entry expires and is read again', async () => {
    const h = await cachedResolver({ cache: { ttlMs: 30 } });
    const s = await h.login();
    const before = await commandCounts();
    h.clock.now = s.record.createdAt + INTERVAL;
    expect((await h.resolver.resolve(s.token)).outcome).toBe('valid');
    for (let i = 0; i < 100 && delta(before, await commandCounts(), 'pexpire') === 0; i++) await sleep(10);
    expect(delta(before, await commandCounts(), 'pexpire')).toBe(1);

    // the entry expires (30 ms) and is read again within the same refresh interval
    await sleep(60);
    h.clock.now += 1_000;
    expect(await h.resolver.resolve(s.token)).toMatchObject({ outcome: 'valid', source: 'redis' });
    await sleep(50);
    const after = await commandCounts();
    expect(delta(before, after, 'get')).toBe(2);
    expect(delta(before, after, 'pexpire')).toBe(1);
  });

  it('keeps the refresh pace when an expired entry has been swept from memory', async () => {
    const h = await cachedResolver({ cache: { ttlMs: 30 } });
    const s = await h.login();
    const before = await commandCounts();
    h.clock.now = s.record.createdAt + INTERVAL;
    expect((await h.resolver.resolve(s.token)).outcome).toBe('valid');
    // the sweep runs once a second (at least): the entry leaves memory
    for (let i = 0; i < 300 && h.resolver.cacheSize > 0; i++) await sleep(10);
    expect(h.resolver.cacheSize).toBe(0);
    h.clock.now += 2_000;
    expect(await h.resolver.resolve(s.token)).toMatchObject({ outcome: 'valid', source: 'redis' });
    await sleep(50);
    expect(delta(before, await commandCounts(), 'pexpire')).toBe(1);
    // a whole interval later, the next refresh is due
    h.clock.now = s.record.createdAt + 2 * INTERVAL + 5_000;
    await sleep(60);
    expect((await h.resolver.resolve(s.token)).outcome).toBe('valid');
    for (let i = 0; i < 100 && delta(before, await commandCounts(), 'pexpire') < 2; i++) await sleep(10);
    expect(delta(before, await commandCounts(), 'pexpire')).toBe(2);
  });

  it('a session read from memory again carries the same slot, and what was kept in it', async () => {
    const h = await cachedResolver();
    const [a, b] = [await h.login('a'), await h.login('b')];
    const first = await h.resolver.resolve(a.token);
    if (first.outcome !== 'valid') throw new Error(`expected a valid session, got ${first.outcome}`);
    expect(first.session.slot.derived).toBeUndefined();
    first.session.slot.derived = 'signed-a';
    const again = await h.resolver.resolve(a.token);
    if (again.outcome !== 'valid') throw new Error(`expected a valid session, got ${again.outcome}`);
    expect(again.source).toBe('cache');
    expect(again.session.slot).toBe(first.session.slot);
    expect(again.session.slot.derived).toBe('signed-a');
    // another session has a slot of its own
    const other = await h.resolver.resolve(b.token);
    if (other.outcome !== 'valid') throw new Error(`expected a valid session, got ${other.outcome}`);
    expect(other.session.slot).not.toBe(first.session.slot);
    // an invalidation lets the entry go: the next read starts with an empty slot
    h.resolver.invalidate([a.record.sid]);
    const reread = await h.resolver.resolve(a.token);
    if (reread.outcome !== 'valid') throw new Error(`expected a valid session, got ${reread.outcome}`);
    expect(reread.session.slot.derived).toBeUndefined();
  });

  it('holds at most SESSION_CACHE_MAX sessions: the least recently used one leaves first', async () => {
    const h = await cachedResolver({ cache: { max: 3 } });
    const sessions = [];
    for (const sub of ['a', 'b', 'c', 'd']) sessions.push(await h.login(sub));
    const [a, b, c, d] = sessions as [(typeof sessions)[0], (typeof sessions)[0], (typeof sessions)[0], (typeof sessions)[0]];
    for (const s of [a, b, c]) expect((await h.resolver.resolve(s.token)).source).toBe('redis');
    // a is used again: b is now the least recently used, and makes room for d
    expect((await h.resolver.resolve(a.token)).source).toBe('cache');
    expect((await h.resolver.resolve(d.token)).source).toBe('redis');
    expect(h.resolver.cacheSize).toBe(3);
    const sources = [];
    for (const s of [a, c, d, b]) sources.push((await h.resolver.resolve(s.token)).source);
    expect(sources).toEqual(['cache', 'cache', 'cache', 'redis']);
    expect(h.resolver.cacheSize).toBe(3);
  });

  it('counts distinct sessions seen in the last five minutes', async () => {
    const h = await cachedResolver();
    const sessions = await Promise.all(['a', 'b', 'c'].map((sub) => h.login(sub)));
    for (const s of sessions) await h.resolver.resolve(s.token);
    await h.resolver.resolve(sessions[0]!.token);
    expect(h.resolver.activeSessions).toBe(3);
    h.clock.now += 4 * MIN;
    await h.resolver.resolve(sessions[0]!.token);
    h.clock.now += 2 * MIN;
    // b and c were last seen six minutes ago, a two minutes ago
    expect(h.resolver.activeSessions).toBe(1);
  });
});
