import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { sessionRef } from '@sessiongate/session';
import { cookieToken, startTestAuth, type TestAuth } from '../../test/support/auth-service.js';
import { readSession } from '../../test/support/sessions.js';

const USERS = {
  fred: { password: 'fred-password', roles: ['user'], profile: { name: 'Fred', team: 'ops' } },
  gina: { password: 'gina-password', roles: ['user'] },
  hana: { password: 'hana-password', roles: ['user'] },
  ivy: { password: 'ivy-password', roles: ['user'] },
};

describe('my sessions', () => {
  let t: TestAuth;

  beforeAll(async () => {
    t = await startTestAuth({ redisUrl: inject('redisUrl'), users: USERS });
  });
  afterAll(() => t.close());

  async function login(user: keyof typeof USERS, ua: string): Promise<{ token: string; header: string; sid: string }> {
    const token = cookieToken(await t.login(user, USERS[user].password, { 'user-agent': ua }));
    const record = (await readSession(t.store, sessionRef(token)))!;
    return { token, header: await t.xSessionFor(token), sid: record.sid };
  }

  it('lists the live sessions with the current one marked', async () => {
    const laptop = await login('fred', 'Laptop/1.0');
    const phone = await login('fred', 'Phone/2.0');
    const res = await t.svc.app.inject({ method: 'GET', url: '/auth/sessions', headers: { 'x-session': phone.header } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const { sessions } = res.json() as { sessions: Record<string, unknown>[] };
    expect(sessions).toHaveLength(2);
    const bySid = new Map(sessions.map((s) => [s.sid, s]));
    expect(bySid.get(phone.sid)).toMatchObject({ current: true, userAgent: 'Phone/2.0' });
    expect(bySid.get(laptop.sid)).toMatchObject({ current: false, userAgent: 'Laptop/1.0' });
    for (const s of sessions) {
      expect(Object.keys(s).sort()).toEqual(['createdAt', 'current', 'data', 'expiresAt', 'lastSeenAt', 'sid', 'userAgent']);
      // no service stored anything in these
      expect(s.data).toEqual([]);
      for (const k of ['createdAt', 'lastSeenAt', 'expiresAt'] as const) {
        expect(new Date(s[k] as string).toISOString()).toBe(s[k]);
      }
      expect(Date.parse(s.expiresAt as string)).toBeGreaterThan(Date.parse(s.createdAt as string));
    }
    // never a token (the sid is a one-way hash of it)
    expect(res.body).not.toContain(phone.token);
  });

  it('shows which services stored data in a session and how much, never the values; logout takes the data with it', async () => {
    const shopping = await login('ivy', 'Shop/1');
    const plain = await login('ivy', 'Plain/1');
    // what two services stored, the way the gateway's session data endpoint stores it
    const cart = { cartId: 'cart-value-7f3a', coupon: 'coupon-value-91c2', items: 3 };
    const prefs = { themeName: 'theme-value-midnight', beta: true };
    const limits = { maxBytes: 1024, maxDataBytes: 4096 };
    const wroteCart = await t.store.writeData('ivy', shopping.sid, 'cart', { set: cart, remove: [] }, limits);
    const wrotePrefs = await t.store.writeData('ivy', shopping.sid, 'prefs', { set: prefs, remove: [] }, limits);
    expect([wroteCart.outcome, wrotePrefs.outcome]).toEqual(['ok', 'ok']);

    const res = await t.svc.app.inject({ method: 'GET', url: '/auth/sessions', headers: { 'x-session': plain.header } });
    expect(res.statusCode).toBe(200);
    const { sessions } = res.json() as { sessions: { sid: string; data: unknown }[] };
    const bySid = new Map(sessions.map((s) => [s.sid, s]));
    // the size as stored: what the write reported, the JSON of the namespace in UTF-8
    expect(bySid.get(shopping.sid)!.data).toEqual([
      { namespace: 'cart', bytes: Buffer.byteLength(JSON.stringify(cart)) },
      { namespace: 'prefs', bytes: Buffer.byteLength(JSON.stringify(prefs)) },
    ]);
    expect(bySid.get(shopping.sid)!.data).toEqual([
      { namespace: 'cart', bytes: wroteCart.namespaceBytes },
      { namespace: 'prefs', bytes: wrotePrefs.namespaceBytes },
    ]);
    expect(bySid.get(plain.sid)!.data).toEqual([]);
    // neither a value nor a key of the data appears anywhere in the answer
    for (const secret of [...Object.keys(cart), ...Object.keys(prefs), cart.cartId, cart.coupon, prefs.themeName]) {
      expect(res.body).not.toContain(secret);
    }

    const key = t.keys.session(sessionRef(shopping.token));
    expect(await t.redis.get(key)).toContain(cart.cartId);
    const out = await t.svc.app.inject({ method: 'POST', url: '/auth/logout', headers: { 'x-session': shopping.header } });
    expect(out.statusCode).toBe(204);
    // the data lived in the session's record: one key, gone with it
    expect(await t.redis.exists(key)).toBe(0);
    const after = await t.svc.app.inject({ method: 'GET', url: '/auth/sessions', headers: { 'x-session': plain.header } });
    expect((after.json() as { sessions: { sid: string }[] }).sessions.map((s) => s.sid)).not.toContain(shopping.sid);
    expect(after.body).not.toContain(cart.cartId);
  });

  it('ends one session by its sid, and never another user\'s', async () => {
    const one = await login('fred', 'A/1');
    const two = await login('fred', 'B/1');
    const hers = await login('gina', 'C/1');

    const theirs = await t.svc.app.inject({ method: 'DELETE', url: `/auth/sessions/${hers.sid}`, headers: { 'x-session': one.header } });
    expect(theirs.statusCode).toBe(404);
    expect(theirs.json().error).toBe('not_found');
    expect(await t.redis.exists(t.keys.session(sessionRef(hers.token)))).toBe(1);

    const res = await t.svc.app.inject({ method: 'DELETE', url: `/auth/sessions/${two.sid}`, headers: { 'x-session': one.header } });
    expect(res.statusCode).toBe(204);
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(await t.redis.exists(t.keys.session(sessionRef(two.token)))).toBe(0);
    expect(await t.redis.exists(t.keys.session(sessionRef(one.token)))).toBe(1);

    const again = await t.svc.app.inject({ method: 'DELETE', url: `/auth/sessions/${two.sid}`, headers: { 'x-session': one.header } });
    expect(again.statusCode).toBe(404);

    // ending the current one is a logout: the cookie is cleared too
    const self = await t.svc.app.inject({ method: 'DELETE', url: `/auth/sessions/${one.sid}`, headers: { 'x-session': one.header } });
    expect(self.statusCode).toBe(204);
    expect(self.headers['set-cookie']).toMatch(/^sid=;.*Max-Age=0/);
  });

  it('needs a session', async () => {
    for (const [method, url] of [['GET', '/auth/sessions'], ['DELETE', '/auth/sessions/abc'], ['GET', '/auth/me']] as const) {
      const res = await t.svc.app.inject({ method, url });
      expect(res.statusCode).toBe(401);
      expect(res.json().error).toBe('unauthenticated');
    }
  });

  it('prunes index entries of sessions that expired', async () => {
    const live = await login('hana', 'Live/1');
    // one session past its absolute expiry (created 13 h ago), one whose idle TTL ran out
    const old = await t.store.create(
      { sub: 'hana', roles: ['user'], idleTimeoutMs: 30 * 60_000, absoluteTimeoutMs: 12 * 3_600_000 },
      Date.now() - 13 * 3_600_000,
    );
    const index = t.keys.userIndex('hana');
    expect(await t.redis.zrange(index, 0, '-1')).toContain(old.record.sid);
    // the next creation drops the entry past its absolute expiry, by its score
    const idle = await t.store.create({ sub: 'hana', roles: ['user'], idleTimeoutMs: 30 * 60_000, absoluteTimeoutMs: 12 * 3_600_000 });
    await t.redis.del(t.keys.session(idle.ref)); // what Redis does when the idle TTL runs out
    const members = await t.redis.zrange(index, 0, '-1');
    expect(members).not.toContain(old.record.sid);
    expect(members).toContain(idle.record.sid);

    // and the next login the idle one: it is among the entries each login checks (all of
    // them, with so few)
    const fresh = await login('hana', 'Fresh/1');
    const after = await t.redis.zrange(index, 0, '-1');
    expect(after).not.toContain(idle.record.sid);
    expect(after.sort()).toEqual([live.sid, fresh.sid].sort());
    // and the index itself expires with the last absolute expiry
    const pttl = await t.redis.pttl(index);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(t.config.session.absoluteTimeoutMs);

    // listing prunes too
    const idle2 = await t.store.create({ sub: 'hana', roles: ['user'], idleTimeoutMs: 30 * 60_000, absoluteTimeoutMs: 12 * 3_600_000 });
    await t.redis.del(t.keys.session(idle2.ref));
    const res = await t.svc.app.inject({ method: 'GET', url: '/auth/sessions', headers: { 'x-session': fresh.header } });
    expect((res.json() as { sessions: { sid: string }[] }).sessions.map((s) => s.sid)).not.toContain(idle2.record.sid);
    expect(await t.redis.zrange(index, 0, '-1')).not.toContain(idle2.record.sid);
  });

  it('GET /auth/me says who I am, from the users directory', async () => {
    const s = await login('fred', 'Me/1');
    const res = await t.svc.app.inject({ method: 'GET', url: '/auth/me', headers: { 'x-session': s.header } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ sub: 'fred', roles: ['user'], name: 'Fred', team: 'ops' });
  });
});
