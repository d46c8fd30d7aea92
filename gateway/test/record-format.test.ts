import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  InvalidRecordError,
  KeyLayout,
  MAX_USER_AGENT_LENGTH,
  SessionStore,
  createRedisClient,
  parseRecord,
  serializeRecord,
  shortUserAgent,
  userTag,
  waitUntilReady,
  type RedisClient,
  type SessionData,
  type SessionRecord,
} from '@sessiongate/session';
import { SessionResolver } from '../src/session/resolver.js';
import { startRedisServer } from '../../test/support/redis-server.js';

// The stored record, version 2: compact (the user id, then one JSON array: no other key names,
// no sid, the user agent summarised), and the user's index named by a hash of the user id, so
// the user id is stored once. The target is 400 bytes of Redis memory per live session with its
// index entry, measured with the default key prefix, whether users hold one session or several.
// What earlier releases stored keeps working through an upgrade: version 1 records and the
// early form of version 2 are read, listed and rewritten by a change of roles, and indexes
// named by the user id are moved to their new name by the first script that takes them.

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

/** The record as the release before version 2 wrote it: a JSON object with the sid inside. */
function versionOne(r: SessionRecord): string {
  return JSON.stringify({ ...r, v: 1 });
}

/** The early form of version 2, as an earlier release wrote it: `2:[sub, the rest of the array]`. */
function earlyForm(r: SessionRecord): string {
  const { sub, 2: rest } = JSON.parse(serializeRecord(r)) as { sub: string; 2: unknown[] };
  return `2:${JSON.stringify([sub, ...rest])}`;
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
    expect(raw.startsWith('{"sub":"alice","2":["user admin",')).toBe(true);
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
      expect(raw.startsWith('{"sub":"bob",')).toBe(true);
      expect(await resolver.resolve(s.token)).toMatchObject({ outcome: 'valid', session: { record: { roles: ['user', 'admin'] } } });
      expect(await redis.pttl(key)).toBeGreaterThan(0);
    } finally {
      await resolver.stop();
    }
  });

  it('upgrades what earlier releases stored: an index named by the user id, a record of the early version 2 form', async () => {
    const sub = 'ivy@example.com'; // escaped in the old index name
    const made = [];
    for (const ua of [CHROME, SAFARI_IOS]) {
      made.push(await store.create({ sub, roles: ['user'], claims: { email: sub }, userAgent: ua, idleTimeoutMs: 30 * MIN, absoluteTimeoutMs: 60 * MIN }));
    }
    const index = store.keys.userIndex(sub);
    const legacy = store.keys.legacyUserIndex(sub);
    expect(legacy).toBe(`${store.keys.prefix}u:{${userTag(sub)}}ivy%40example.com`);
    // what earlier releases left in Redis: the index under the user id, one record in the early form
    await redis.set(store.keys.session(made[0]!.ref), earlyForm(made[0]!.record), 'KEEPTTL');
    expect(await redis.rename(index, legacy)).toBe('OK');
    const resolver = new SessionResolver(store, { cache: { enabled: false } });
    try {
      for (const s of made) expect(await resolver.resolve(s.token)).toMatchObject({ outcome: 'valid', session: { record: { sub, roles: ['user'] } } });
      // listing moves the index, keeping its expiry
      expect((await store.list(sub)).map((x) => x.sid).sort()).toEqual(made.map((s) => s.ref.sid).sort());
      expect(await redis.exists(legacy)).toBe(0);
      expect((await redis.zrange(index, 0, '-1')).sort()).toEqual(made.map((s) => s.ref.sid).sort());
      const expiry = Number(await redis.call('PEXPIRETIME', index));
      expect(expiry).toBe(made[1]!.record.absoluteExpiresAt);
      // session data lands in an early-form record, which keeps its form
      expect((await store.writeData(sub, made[0]!.ref.sid, 'cart', { set: CART, remove: [] }, LIMITS)).outcome).toBe('ok');
      expect(parseRecord((await redis.get(store.keys.session(made[0]!.ref)))!, made[0]!.ref.sid).data).toEqual({ cart: CART });
      expect((await redis.get(store.keys.session(made[0]!.ref)))!.startsWith(`2:[${JSON.stringify(sub)},`)).toBe(true);
      // a role change rewrites both as version 2 as written now
      expect(await store.setRoles(sub, ['user', 'admin'])).toBe(2);
      for (const s of made) {
        expect((await redis.get(store.keys.session(s.ref)))!.startsWith(`{"sub":${JSON.stringify(sub)},"2":["user admin",`)).toBe(true);
        expect(await resolver.resolve(s.token)).toMatchObject({ outcome: 'valid', session: { record: { roles: ['user', 'admin'] } } });
      }
      // the data survives the rewrite
      expect((await store.list(sub)).flatMap((x) => x.data.map((d) => d.namespace))).toEqual(['cart']);
    } finally {
      await resolver.stop();
    }
  });

  it('moves an index named by the user id on login, revocation and logout everywhere, losing no session', async () => {
    const open = (sub: string) => store.create({ sub, roles: ['user'], idleTimeoutMs: 30 * MIN, absoluteTimeoutMs: 60 * MIN });
    const asBefore = async (sub: string, ...sessions: { ref: { tag: string; sid: string }; record: SessionRecord }[]) => {
      for (const s of sessions) await redis.set(store.keys.session(s.ref), earlyForm(s.record), 'KEEPTTL');
      await redis.rename(store.keys.userIndex(sub), store.keys.legacyUserIndex(sub));
    };
    // login: the new session joins the old ones, under the new name
    const a = await open('jude');
    await asBefore('jude', a);
    const b = await open('jude');
    expect(await redis.exists(store.keys.legacyUserIndex('jude'))).toBe(0);
    expect((await redis.zrange(store.keys.userIndex('jude'), 0, '-1')).sort()).toEqual([a.ref.sid, b.ref.sid].sort());
    // logout everywhere ends the sessions the old index listed
    const c = await open('kim');
    const d = await open('kim');
    await asBefore('kim', c, d);
    expect(await store.destroyAll('kim')).toBe(2);
    expect(await redis.exists(store.keys.session(c.ref), store.keys.session(d.ref), store.keys.legacyUserIndex('kim'), store.keys.userIndex('kim'))).toBe(0);
    // one session ended by its sid: listed only in the old index
    const e = await open('lou');
    await asBefore('lou', e);
    expect(await store.destroyBySid('lou', e.ref.sid)).toBe(true);
    expect(await redis.exists(store.keys.session(e.ref), store.keys.legacyUserIndex('lou'))).toBe(0);
    // an early-form record missing from every index is ended only for its own user, not for
    // another whose keys share its slot tag
    const [owner, other] = sameTagUsers();
    const f = await open(owner);
    const raw = earlyForm(f.record);
    await redis.set(store.keys.session(f.ref), raw, 'KEEPTTL');
    expect(await redis.zrem(store.keys.userIndex(owner), f.ref.sid)).toBe(1);
    expect(await store.destroyBySid(other, f.ref.sid)).toBe(false);
    expect(await redis.get(store.keys.session(f.ref))).toBe(raw);
    expect(await store.destroyBySid(owner, f.ref.sid)).toBe(true);
    expect(await redis.exists(store.keys.session(f.ref))).toBe(0);
  });

  it('gives new roles only to records of the user named, whatever the index lists', async () => {
    const [owner, other] = sameTagUsers();
    const mine = await store.create({ sub: owner, roles: ['user'], idleTimeoutMs: 30 * MIN, absoluteTimeoutMs: 60 * MIN });
    const theirs = await store.create({ sub: other, roles: ['user'], idleTimeoutMs: 30 * MIN, absoluteTimeoutMs: 60 * MIN });
    // the other user's session listed in this user's index (same slot: the tags match)
    await redis.zadd(store.keys.userIndex(owner), theirs.record.absoluteExpiresAt, theirs.ref.sid);
    const before = await redis.get(store.keys.session(theirs.ref));
    expect(await store.setRoles(owner, ['user', 'admin'])).toBe(1);
    expect(await redis.get(store.keys.session(theirs.ref))).toBe(before);
    expect(parseRecord((await redis.get(store.keys.session(mine.ref)))!, mine.ref.sid).roles).toEqual(['user', 'admin']);
    expect((await store.list(owner)).map((s) => s.sid)).toEqual([mine.ref.sid]);
  });

  it('refuses a version 1 record under another session key', async () => {
    const a = await store.create({ sub: 'carol', roles: ['user'], idleTimeoutMs: 30 * MIN, absoluteTimeoutMs: 60 * MIN });
    const b = await store.create({ sub: 'carol', roles: ['user'], idleTimeoutMs: 30 * MIN, absoluteTimeoutMs: 60 * MIN });
    expect(() => parseRecord(versionOne(a.record), b.ref.sid)).toThrow(/another session id/);
  });

  it('costs at most 400 bytes of Redis memory per live session, index entry included (MEMORY USAGE)', async () => {
    // a Redis of its own and the default key prefix: keys as long as a deployment's (a test
    // prefix of 40-odd characters would add its length to every key)
    const own = await startRedisServer();
    const client = createRedisClient({ connection: { mode: 'standalone', url: own.url } });
    try {
      expect(await waitUntilReady(client, 5000)).toBe(true);
      const sized = new SessionStore(client, new KeyLayout());
      const mix = async (users: number, sessionsOf: (u: number) => number): Promise<number> => {
        let bytes = 0;
        let sessions = 0;
        for (let u = 0; u < users; u++) {
          const sub = randomUUID();
          const made = [];
          for (let k = 0; k < sessionsOf(u); k++) {
            made.push(
              await sized.create({
                sub,
                roles: [['user'], ['user', 'billing'], ['user', 'support', 'admin']][(u + k) % 3]!,
                claims: { email: `firstname.lastname.${u}@example.com` },
                userAgent: u % 2 ? CHROME : SAFARI_IOS,
                idleTimeoutMs: 30 * MIN,
                absoluteTimeoutMs: 12 * 60 * MIN,
              }),
            );
          }
          bytes += Number(await client.call('MEMORY', 'USAGE', sized.keys.userIndex(sub), 'SAMPLES', '0'));
          for (const s of made) bytes += Number(await client.call('MEMORY', 'USAGE', sized.keys.session(s.ref), 'SAMPLES', '0'));
          sessions += made.length;
        }
        return bytes / sessions;
      };
      const spread = await mix(300, (u) => 1 + (u % 3));
      // one session per user pays the whole index
      const single = await mix(300, () => 1);
      console.log(`[record] Redis memory per live session (record + share of the user index): ${spread.toFixed(0)} B with 1–3 sessions per user, ${single.toFixed(0)} B with one`);
      expect(spread).toBeLessThanOrEqual(400);
      expect(single).toBeLessThanOrEqual(400);
    } finally {
      await client.quit();
      await own.stop();
    }
  });
});

// Session data rides in the record after a newline (session-data.ts). A record without data
// must stay exactly what it was before data existed, so its memory is unchanged.

const LIMITS = { maxBytes: 1024, maxDataBytes: 4096 };
const CART = { id: 'c-42', items: 3, gift: false };

/** A live session of `sub` holding CART, written the way the gateway's endpoint writes it. */
async function sessionWithData(sub: string, o: { userAgent?: string } = {}) {
  const s = await store.create({ sub, roles: ['user'], claims: { email: `${sub}@example.com` }, idleTimeoutMs: 30 * MIN, absoluteTimeoutMs: 60 * MIN, ...o });
  expect((await store.writeData(sub, s.ref.sid, 'cart', { set: CART, remove: [] }, LIMITS)).outcome).toBe('ok');
  return s;
}

/** Two user ids with the same slot tag (24 bits: a pair turns up within a few thousand names). */
function sameTagUsers(): [string, string] {
  const seen = new Map<string, string>();
  for (let i = 0; ; i++) {
    const name = `user-${i}`;
    const first = seen.get(userTag(name));
    if (first) return [first, name];
    seen.set(userTag(name), name);
  }
}

describe('records with session data', () => {
  it('round-trips: parse(serialize) is the record, and what a write stores parses as record plus data', async () => {
    const s = await sessionWithData('dora', { userAgent: CHROME });
    const raw = (await redis.get(store.keys.session(s.ref)))!;
    // the identity is kept byte for byte; the data follows one newline
    expect(raw.slice(0, raw.indexOf('\n'))).toBe(serializeRecord(s.record));
    const parsed = parseRecord(raw, s.ref.sid);
    expect(parsed).toEqual({ ...s.record, data: { cart: CART } });
    expect(serializeRecord(parsed)).toBe(`${serializeRecord(s.record)}\n${JSON.stringify(parsed.data)}`);
    expect(parseRecord(serializeRecord(parsed), s.ref.sid)).toEqual(parsed);

    // several namespaces, every scalar type, with and without the optional parts
    const data: SessionData = { cart: { id: 'c-1', n: -1.5, ok: true }, prefs: { 'ui.theme': 'dark', 'a:b-c_d': 0 } };
    const bare = { ...s.record, claims: {} };
    delete (bare as { userAgent?: string }).userAgent;
    for (const r of [{ ...s.record, data }, { ...bare, data }, { ...s.record, roles: ['a b', 'c'], data }]) {
      const text = serializeRecord(r);
      expect(text.split('\n')).toHaveLength(2);
      expect(parseRecord(text, s.ref.sid)).toEqual(r);
    }
    // empty data is no data: nothing after the identity, and none read back
    expect(serializeRecord({ ...s.record, data: {} })).toBe(serializeRecord(s.record));
    expect(parseRecord(`${serializeRecord(s.record)}\n{}`, s.ref.sid)).toEqual(s.record);
  });

  it.each([
    ['not JSON', '{"cart":'],
    ['nothing after the newline', ''],
    ['a list', '[{"id":1}]'],
    ['a scalar', '42'],
    ['null', 'null'],
    ['a namespace that is not an object', '{"cart":"c-42"}'],
    ['a namespace holding a list', '{"cart":[1]}'],
    ['a nested value', '{"cart":{"id":{"deep":1}}}'],
    ['a null value', '{"cart":{"id":null}}'],
    ['a bad namespace name', '{"Cart!":{"id":1}}'],
    ['a bad key', '{"cart":{"no spaces":1}}'],
    ['a second newline', '{"cart":{"id":1}}\n{"x":{"y":1}}'],
    // values no write could have stored (the endpoint refuses them), put there behind its back
    ['a value with a control character', '{"cart":{"id":"a\\u0000b"}}'],
    ['a value with CR/LF', '{"cart":{"id":"a\\r\\nX-Injected: 1"}}'],
    ['a string longer than a write may store', JSON.stringify({ cart: { id: 'x'.repeat(1025) } })],
    ['a number a write could not keep exactly', '{"cart":{"n":0.30000000000000004}}'],
  ])('refuses a record whose data part is %s (InvalidRecordError: the whole record, never half of it)', (_what, tail) => {
    const record = { v: 2, sid: 'S1', sub: 'erik', roles: ['user'], createdAt: Date.now(), absoluteExpiresAt: Date.now() + 3_600_000, idleTimeoutMs: 600_000, claims: {} };
    const identity = serializeRecord(record);
    // the identity alone is fine: the data part is what is refused
    expect(parseRecord(identity, 'S1')).toEqual(record);
    expect(() => parseRecord(`${identity}\n${tail}`, 'S1')).toThrow(InvalidRecordError);
  });

  it('a change of roles keeps the data, byte for byte, and the expiry', async () => {
    const s = await sessionWithData('fay');
    const key = store.keys.session(s.ref);
    const before = (await redis.get(key))!;
    const ttl = await redis.pttl(key);
    expect(await store.setRoles('fay', ['user', 'admin'])).toBe(1);
    const after = (await redis.get(key))!;
    expect(after).not.toBe(before);
    expect(after.slice(after.indexOf('\n'))).toBe(before.slice(before.indexOf('\n')));
    expect(parseRecord(after, s.ref.sid)).toEqual({ ...s.record, roles: ['user', 'admin'], data: { cart: CART } });
    const pttl = await redis.pttl(key);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(ttl);
    // and the listing still shows it
    expect((await store.list('fay'))[0]!.data).toEqual([{ namespace: 'cart', bytes: Buffer.byteLength(JSON.stringify(CART)) }]);
  });

  it('ends one session holding data even when the index no longer lists it, and only for its own user', async () => {
    // two users whose slot tags match, so their session keys share a layout: only the
    // record's sub tells them apart (found by counting up: the same pair on every run)
    const [owner, other] = sameTagUsers();
    const s = await store.create({ sub: owner, roles: ['user'], idleTimeoutMs: 30 * MIN, absoluteTimeoutMs: 60 * MIN });
    // the other user's name inside the data must not pass for the record's owner
    expect((await store.writeData(owner, s.ref.sid, 'cart', { set: { sub: other, id: 'c-1' }, remove: [] }, LIMITS)).outcome).toBe('ok');
    const key = store.keys.session(s.ref);
    // the whole value, with its data, is not one JSON document: the script reads the identity alone
    const raw = (await redis.get(key))!;
    expect(() => JSON.parse(raw)).toThrow();
    // missing from the index (none should be): the script checks whose record it is
    expect(await redis.zrem(store.keys.userIndex(owner), s.ref.sid)).toBe(1);
    expect(await store.destroyBySid(other, s.ref.sid)).toBe(false);
    expect(await redis.get(key)).toBe(raw);
    expect(await store.destroyBySid(owner, s.ref.sid)).toBe(true);
    expect(await redis.exists(key)).toBe(0);
    expect(await store.destroyBySid(owner, s.ref.sid)).toBe(false);
  });

  it('stores a session without data exactly as before session data existed: no newline, the same bytes', async () => {
    const s = await store.create({ sub: 'hal', roles: ['user'], claims: { email: 'hal@example.com' }, userAgent: SAFARI_IOS, idleTimeoutMs: 30 * MIN, absoluteTimeoutMs: 60 * MIN });
    const raw = (await redis.get(store.keys.session(s.ref)))!;
    expect(raw).not.toContain('\n');
    // the version 2 object, as the release before session data wrote it
    const [sub, ...rest] = [s.record.sub, 'user', s.record.createdAt, 3600, 1800, { email: 'hal@example.com' }, 'Safari 18 on iOS'];
    expect(raw).toBe(`{"sub":${JSON.stringify(sub)},"2":${JSON.stringify(rest)}}`);
    expect(parseRecord(raw, s.ref.sid)).not.toHaveProperty('data');
    expect((await store.list('hal'))[0]!.data).toEqual([]);
    // a write that removes the last key leaves it that way again
    await sessionWithData('hal');
    const withData = (await store.list('hal')).find((x) => x.data.length > 0)!;
    expect((await store.writeData('hal', withData.sid, 'cart', { set: {}, remove: Object.keys(CART) }, LIMITS)).outcome).toBe('ok');
    expect(await redis.get(store.keys.session({ tag: s.ref.tag, sid: withData.sid }))).not.toContain('\n');
  });
});
