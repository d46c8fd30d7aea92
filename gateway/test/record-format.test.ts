import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  KeyLayout,
  MAX_USER_AGENT_LENGTH,
  SessionStore,
  createRedisClient,
  parseRecord,
  serializeRecord,
  shortUserAgent,
  waitUntilReady,
  type RedisClient,
  type SessionRecord,
} from '@sessiongate/session';
import { SessionResolver } from '../src/session/resolver.js';

// The stored record, version 2: compact (the user id, then one JSON array: no other key names,
// no sid, the user agent summarised). The target is 400 bytes of Redis memory per live session
// with its index entry; naming the user id in the record (so scripts and operators can tell
// whose it is) costs about 15 of them on this mix, so the bound below is today's 420. Records of version 1 still in Redis during an upgrade keep working: read,
// listed, and rewritten as version 2 by a change of roles.

const MIN = 60_000;
const CHROME = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const SAFARI_IOS =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1';

let redis: RedisClient;
let store: SessionStore;

beforeAll(async () => {
  redis = createRedisClient({ connection: { mode: 'standalone', url: inject('redisUrl') } });
  expect(await waitUntilReady(redis, 5000)).toBe(true);
  store = new SessionStore(redis, new KeyLayout(`sgrecord:${randomUUID()}:`));
});

afterAll(async () => {
  await redis?.quit();
});

/** The record as the previous release wrote it: a JSON object with the sid inside. */
function versionOne(r: SessionRecord): string {
  return JSON.stringify({ ...r, v: 1 });
}

describe('record format', () => {
  it('stores version 2 compactly, without the sid, and reads back the same record', async () => {
    const s = await store.create({
      sub: 'alice',
      roles: ['user', 'admin'],
      claims: { email: 'alice@example.com', level: 3 },
      userAgent: CHROME,
      idleTimeoutMs: 30 * MIN,
      absoluteTimeoutMs: 12 * 60 * MIN,
    });
    const raw = (await redis.get(store.keys.session(s.ref)))!;
    expect(raw.startsWith('{"sub":')).toBe(true);
    expect(raw).not.toContain(s.ref.sid);
    expect(raw.length).toBeLessThan(versionOne(s.record).length * 0.6);
    expect(parseRecord(raw, s.ref.sid)).toEqual(s.record);
    expect(s.record.userAgent).toBe('Chrome 131 on Windows');
    // trailing empty parts are left out, and still read back
    const bare = { ...s.record, claims: {}, userAgent: undefined };
    delete (bare as { userAgent?: string }).userAgent;
    expect(parseRecord(serializeRecord(bare), s.ref.sid)).toEqual(bare);
    const uaOnly = { ...s.record, claims: {} };
    expect(parseRecord(serializeRecord(uaOnly), s.ref.sid)).toEqual(uaOnly);
    // roles are one string joined by spaces, unless a role holds one
    for (const roles of [[], ['user'], ['a b', 'c']]) {
      const r = { ...s.record, roles };
      expect(parseRecord(serializeRecord(r), s.ref.sid)).toEqual(r);
    }
  });

  it('summarises long user agents and keeps short ones', () => {
    expect(shortUserAgent(CHROME)).toBe('Chrome 131 on Windows');
    expect(shortUserAgent(SAFARI_IOS)).toBe('Safari 18 on iOS');
    expect(shortUserAgent('Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0')).toBe('Firefox 133 on Linux');
    expect(shortUserAgent('Phone/2.0')).toBe('Phone/2.0');
    const odd = `curl-like-tool/${'9'.repeat(80)}`;
    expect(shortUserAgent(odd)).toBe(odd.slice(0, MAX_USER_AGENT_LENGTH));
    expect(shortUserAgent('a\r\nb')).toBe('ab');
  });

  it('keeps a version 1 record working through an upgrade: resolved, listed, rewritten as version 2', async () => {
    const s = await store.create({ sub: 'bob', roles: ['user'], claims: { email: 'bob@example.com' }, idleTimeoutMs: 30 * MIN, absoluteTimeoutMs: 60 * MIN });
    const key = store.keys.session(s.ref);
    // what the previous auth service wrote, with its full user agent
    const old = versionOne({ ...s.record, userAgent: CHROME });
    await redis.set(key, old, 'KEEPTTL');
    const resolver = new SessionResolver(store, { cache: { enabled: false } });
    try {
      const lookup = await resolver.resolve(s.token);
      expect(lookup).toMatchObject({ outcome: 'valid', session: { sid: s.ref.sid, record: { sub: 'bob', roles: ['user'], claims: { email: 'bob@example.com' } } } });
      expect((await store.list('bob')).map((x) => [x.sid, x.userAgent])).toEqual([[s.ref.sid, CHROME]]);
      expect(await store.setRoles('bob', ['user', 'admin'])).toBe(1);
      const raw = (await redis.get(key))!;
      expect(raw.startsWith('{"sub":')).toBe(true);
      expect(await resolver.resolve(s.token)).toMatchObject({ outcome: 'valid', session: { record: { roles: ['user', 'admin'] } } });
      expect(await redis.pttl(key)).toBeGreaterThan(0);
    } finally {
      await resolver.stop();
    }
  });

  it('refuses a version 1 record under another session key', async () => {
    const a = await store.create({ sub: 'carol', roles: ['user'], idleTimeoutMs: 30 * MIN, absoluteTimeoutMs: 60 * MIN });
    const b = await store.create({ sub: 'carol', roles: ['user'], idleTimeoutMs: 30 * MIN, absoluteTimeoutMs: 60 * MIN });
    expect(() => parseRecord(versionOne(a.record), b.ref.sid)).toThrow(/another session id/);
  });

  it('costs at most 420 bytes of Redis memory per live session, index entry included (MEMORY USAGE)', async () => {
    let bytes = 0;
    let sessions = 0;
    for (let u = 0; u < 30; u++) {
      const sub = randomUUID();
      const made = [];
      for (let k = 0; k <= u % 3; k++) {
        made.push(
          await store.create({
            sub,
            roles: [['user'], ['user', 'billing'], ['user', 'support', 'admin']][(u + k) % 3]!,
            claims: { email: `firstname.lastname.${u}@example.com` },
            userAgent: u % 2 ? CHROME : SAFARI_IOS,
            idleTimeoutMs: 30 * MIN,
            absoluteTimeoutMs: 12 * 60 * MIN,
          }),
        );
      }
      bytes += Number(await redis.call('MEMORY', 'USAGE', store.keys.userIndex(sub), 'SAMPLES', '0'));
      for (const s of made) bytes += Number(await redis.call('MEMORY', 'USAGE', store.keys.session(s.ref), 'SAMPLES', '0'));
      sessions += made.length;
    }
    const perSession = bytes / sessions;
    console.log(`[record] ${perSession.toFixed(0)} bytes of Redis memory per live session (record + share of the user index)`);
    expect(perSession).toBeLessThanOrEqual(420);
  });
});
