import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KeyLayout, SessionStore, createRedisClient, serializeRecord, userTag, waitUntilReady } from '@sessiongate/session';
import { SessionResolver, type Lookup } from '../src/session/resolver.js';
import { startRedisServer, type RedisServer } from '../../test/support/redis-server.js';

// Redis tells the gateway of every change to a session key, whoever makes it and however:
// a write by another client, a DEL from redis-cli, an expiry, a maxmemory eviction, a
// FLUSHDB. Each evicts the cached session well within a second (it takes milliseconds; the
// bound is loose on purpose: the machine may be busy). And while the tracking connection is
// gone, nothing is served from memory.

const MIN = 60_000;
const LIMIT_MS = 1000;

let server: RedisServer;
/** Another client, as an operator's redis-cli would be. */
let other: Redis;

beforeAll(async () => {
  server = await startRedisServer();
  other = new Redis(server.url);
});

afterAll(async () => {
  other?.disconnect();
  await server?.stop();
});

let open: { close(): Promise<void> }[] = [];
afterEach(async () => {
  for (const h of open) await h.close();
  open = [];
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function trackedResolver(url = server.url, opts: { ttlMs?: number } = {}) {
  const client = createRedisClient({ connection: { mode: 'standalone', url } });
  await waitUntilReady(client, 5000);
  const store = new SessionStore(client, new KeyLayout(`sgtrack:${randomUUID()}:`));
  // a long cache TTL: only Redis' own invalidation can end a cached session within the test
  const resolver = new SessionResolver(store, { cache: { ttlMs: opts.ttlMs ?? 10 * MIN } });
  await resolver.start();
  for (let i = 0; i < 500 && !resolver.cacheActive; i++) await sleep(10);
  expect(resolver.cacheActive).toBe(true);
  const h = {
    store,
    resolver,
    login: (sub = 'alice', idleTimeoutMs = 10 * MIN) =>
      store.create({ sub, roles: ['user'], claims: { email: `${sub}@example.com` }, idleTimeoutMs, absoluteTimeoutMs: 60 * MIN }),
    /**
     * Resolves the token until the answer comes from memory (the login's own write is
     * announced too, and may cancel the first read if it lands while that read is in flight).
     */
    async cache(token: string) {
      let last: Lookup | null = null;
      for (let i = 0; i < 20 && last?.source !== 'cache'; i++) {
        last = await resolver.resolve(token);
        expect(last.outcome).toBe('valid');
        if (last.source !== 'cache') await sleep(5);
      }
      expect(last).toMatchObject({ outcome: 'valid', source: 'cache' });
    },
    /** Milliseconds until the session is no longer answered from memory. */
    async msUntilEvicted(token: string): Promise<{ ms: number; last: Lookup }> {
      const t0 = performance.now();
      for (;;) {
        const last = await resolver.resolve(token);
        const ms = performance.now() - t0;
        if (last.source !== 'cache' || ms > LIMIT_MS) return { ms, last };
        await sleep(1);
      }
    },
    async close() {
      await resolver.stop();
      await client.quit();
    },
  };
  open.push(h);
  return h;
}

describe('server-assisted invalidation (CLIENT TRACKING)', () => {
  it('a write by another client evicts the session at once, and the new record is read', async () => {
    const h = await trackedResolver();
    const s = await h.login();
    await h.cache(s.token);
    const key = h.store.keys.session(s.ref);
    await other.set(key, serializeRecord({ ...s.record, roles: ['user', 'admin'] }), 'KEEPTTL');
    const { ms, last } = await h.msUntilEvicted(s.token);
    expect(ms).toBeLessThan(LIMIT_MS);
    expect(last).toMatchObject({ outcome: 'valid', source: 'redis', session: { record: { roles: ['user', 'admin'] } } });
  });

  it('a DEL from another connection ends the cached session', async () => {
    const h = await trackedResolver();
    const s = await h.login();
    await h.cache(s.token);
    await other.del(h.store.keys.session(s.ref));
    const { ms, last } = await h.msUntilEvicted(s.token);
    expect(ms).toBeLessThan(LIMIT_MS);
    expect(last.outcome).toBe('missing');
  });

  it('an expiry in Redis ends the cached session, whatever the cache TTL', async () => {
    const h = await trackedResolver();
    const s = await h.login();
    await h.cache(s.token);
    const key = h.store.keys.session(s.ref);
    await other.pexpire(key, 50);
    // past the TTL as Redis counts it (a loaded machine may read the key in its last millisecond)
    while ((await other.pttl(key)) > 0) await sleep(5);
    await sleep(5);
    const { ms, last } = await h.msUntilEvicted(s.token);
    expect(ms).toBeLessThan(LIMIT_MS);
    expect(last.outcome).toBe('missing');
  });

  it('FLUSHDB ends every cached session', async () => {
    const h = await trackedResolver();
    const a = await h.login('alice');
    const b = await h.login('bob');
    await h.cache(a.token);
    await h.cache(b.token);
    await other.flushdb();
    for (const s of [a, b]) {
      const { ms, last } = await h.msUntilEvicted(s.token);
      expect(ms).toBeLessThan(LIMIT_MS);
      expect(last.outcome).toBe('missing');
    }
  });

  it('a maxmemory eviction ends the cached session', async () => {
    const small = await startRedisServer({ args: ['--maxmemory', '4mb', '--maxmemory-policy', 'allkeys-lru'] });
    const filler = new Redis(small.url);
    try {
      const h = await trackedResolver(small.url);
      const s = await h.login();
      await h.cache(s.token);
      const key = h.store.keys.session(s.ref);
      // fill the server until the session key is evicted (it is the least recently used)
      const chunk = 'x'.repeat(16 * 1024);
      for (let i = 0; i < 2000 && (await filler.exists(key)) === 1; i++) await filler.set(`fill:${i}`, chunk);
      expect(await filler.exists(key)).toBe(0);
      expect(Number(/evicted_keys:(\d+)/.exec(await filler.info('stats'))![1])).toBeGreaterThan(0);
      const { ms, last } = await h.msUntilEvicted(s.token);
      expect(ms).toBeLessThan(LIMIT_MS);
      expect(last.outcome).toBe('missing');
    } finally {
      filler.disconnect();
      for (const h of open) await h.close();
      open = [];
      await small.stop();
    }
  });

  it('a change to an API key record by another connection reaches the cached key: roles rewritten, then DEL', async () => {
    const h = await trackedResolver();
    const { key, record } = await h.resolver.apiKeys.create({ sub: 'svc', name: 'ci', scope: null, ownerRoles: ['user', 'admin'], expiresAt: null });
    const name = h.resolver.apiKeys.layout.key({ tag: userTag('svc'), sid: record.id });
    const untilCached = async () => {
      for (let i = 0; i < 20; i++) {
        if ((await h.resolver.resolveApiKey(key)).source === 'cache') return;
        await sleep(5);
      }
      throw new Error('the key was never answered from memory');
    };
    const msUntilRead = async () => {
      const t0 = performance.now();
      for (;;) {
        const last = await h.resolver.resolveApiKey(key);
        const ms = performance.now() - t0;
        if (last.source !== 'cache' || ms > LIMIT_MS) return { ms, last };
        await sleep(1);
      }
    };
    await untilCached();
    await other.set(name, JSON.stringify({ ...record, roles: ['user'] }), 'KEEPTTL');
    const rewritten = await msUntilRead();
    expect(rewritten.ms).toBeLessThan(LIMIT_MS);
    expect(rewritten.last).toMatchObject({ outcome: 'valid', source: 'redis', session: { via: 'api_key', record: { roles: ['user'] } } });
    await untilCached();
    await other.del(name);
    const deleted = await msUntilRead();
    expect(deleted.ms).toBeLessThan(LIMIT_MS);
    expect(deleted.last.outcome).toBe('missing');
  });

  it('bypasses the cache while the tracking connection is gone, and flushes it on return', async () => {
    const h = await trackedResolver();
    const s = await h.login();
    await h.cache(s.token);
    await other.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    // a change while tracking is down: nobody tells the gateway
    await other.set(h.store.keys.session(s.ref), serializeRecord({ ...s.record, roles: ['user', 'admin'] }), 'KEEPTTL');
    const lookup = await h.resolver.resolve(s.token);
    expect(lookup).toMatchObject({ outcome: 'valid', source: 'redis', session: { record: { roles: ['user', 'admin'] } } });
    for (let i = 0; i < 200 && !h.resolver.cacheActive; i++) await sleep(10);
    expect(h.resolver.cacheActive).toBe(true);
    expect(h.resolver.cacheSize).toBe(0);
  });
});
