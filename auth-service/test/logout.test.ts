import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { sessionRef, waitUntilReady } from '@sessiongate/session';
import { cookieToken, startTestAuth, type TestAuth } from '../../test/support/auth-service.js';
import { startRedisServer } from '../../test/support/redis-server.js';
import { watchSessionKeys, type SessionKeyWatch } from '../../test/support/session-tracking.js';

const USERS = { dana: { password: 'dana-password', roles: ['user'] }, erin: { password: 'erin-password', roles: ['user'] } };

describe('logout', () => {
  let t: TestAuth;
  let watch: SessionKeyWatch;

  beforeAll(async () => {
    t = await startTestAuth({ redisUrl: inject('redisUrl'), users: USERS });
    // a gateway's view: Redis reports every change to a session key
    watch = await watchSessionKeys(inject('redisUrl'), t.keys);
  });
  afterAll(async () => {
    await watch.close();
    await t.close();
  });

  async function session(user: keyof typeof USERS): Promise<{ token: string; header: string }> {
    const token = cookieToken(await t.login(user, USERS[user].password));
    return { token, header: await t.xSessionFor(token) };
  }

  it('deletes this session at once and tells every gateway', async () => {
    const { token, header } = await session('dana');
    const key = t.keys.session(sessionRef(token));
    expect(await t.redis.exists(key)).toBe(1);
    const seen = watch.sids.length;
    const res = await t.svc.app.inject({ method: 'POST', url: '/auth/logout', headers: { 'x-session': header } });
    expect(res.statusCode).toBe(204);
    // gone before the response: no waiting for a TTL
    expect(await t.redis.exists(key)).toBe(0);
    await vi.waitFor(() => expect(watch.sids.slice(seen)).toContain(sessionRef(token).sid));
    expect(res.headers['set-cookie']).toMatch(/^sid=; Path=\/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax; Secure$/);
    // and the index no longer lists it
    const list = await t.store.list('dana');
    expect(list.map((s) => s.sid)).not.toContain(sessionRef(token).sid);
  });

  it('is idempotent: without a session, or twice, it still answers 204', async () => {
    const none = await t.svc.app.inject({ method: 'POST', url: '/auth/logout' });
    expect(none.statusCode).toBe(204);
    expect(none.headers['set-cookie']).toMatch(/Max-Age=0/);
    const { header } = await session('dana');
    expect((await t.svc.app.inject({ method: 'POST', url: '/auth/logout', headers: { 'x-session': header } })).statusCode).toBe(204);
    expect((await t.svc.app.inject({ method: 'POST', url: '/auth/logout', headers: { 'x-session': header } })).statusCode).toBe(204);
    // a body-less JSON POST, as fetch() sends it, is fine too
    const empty = await t.svc.app.inject({ method: 'POST', url: '/auth/logout', headers: { 'content-type': 'application/json' } });
    expect(empty.statusCode).toBe(204);
  });

  it('logout-all ends every session of the user, and only theirs', async () => {
    const a = await session('dana');
    const b = await session('dana');
    const c = await session('dana');
    const other = await session('erin');
    const seen = watch.sids.length;
    const res = await t.svc.app.inject({ method: 'POST', url: '/auth/logout-all', headers: { 'x-session': b.header } });
    expect(res.statusCode).toBe(204);
    expect(res.headers['set-cookie']).toMatch(/Max-Age=0/);
    for (const s of [a, b, c]) expect(await t.redis.exists(t.keys.session(sessionRef(s.token)))).toBe(0);
    expect(await t.redis.exists(t.keys.userIndex('dana'))).toBe(0);
    expect(await t.redis.exists(t.keys.session(sessionRef(other.token)))).toBe(1);
    // every gateway hears about all three (Redis reports the deletes), and nothing of erin's
    await vi.waitFor(() => {
      for (const s of [a, b, c]) expect(watch.sids.slice(seen)).toContain(sessionRef(s.token).sid);
    });
    expect(watch.sids.slice(seen)).not.toContain(sessionRef(other.token).sid);
  });

  it('logout-all without a session is 401 unauthenticated', async () => {
    const res = await t.svc.app.inject({ method: 'POST', url: '/auth/logout-all' });
    expect(res.statusCode).toBe(401);
    expect(res.json()).toEqual({ error: 'unauthenticated', message: 'A valid session is required' });
  });
});

describe('logout while Redis is down', () => {
  it('does not report success when Redis cannot confirm the delete', async () => {
    const redis = await startRedisServer();
    const t = await startTestAuth({ redisUrl: redis.url, users: USERS });
    try {
      const token = cookieToken(await t.login('dana', 'dana-password'));
      const header = await t.xSessionFor(token);
      await redis.kill();
      const res = await t.svc.app.inject({ method: 'POST', url: '/auth/logout', headers: { 'x-session': header } });
      expect(res.statusCode).toBe(503);
      expect(res.json()).toEqual({ error: 'session_store_unavailable', message: 'The session store is unavailable, retry later' });
      // the browser keeps its cookie so the user can retry
      expect(res.headers['set-cookie']).toBeUndefined();
      const all = await t.svc.app.inject({ method: 'POST', url: '/auth/logout-all', headers: { 'x-session': header } });
      expect(all.statusCode).toBe(503);
      // and login fails closed
      expect((await t.login('dana', 'dana-password')).statusCode).toBe(503);

      // once Redis is back (empty: it keeps nothing on disk), the same logout succeeds
      await redis.restart();
      await Promise.all([waitUntilReady(t.redis, 5000), waitUntilReady(t.svc.app.sessionStore.redis, 5000)]);
      const again = await t.svc.app.inject({ method: 'POST', url: '/auth/logout', headers: { 'x-session': header } });
      expect(again.statusCode).toBe(204);
    } finally {
      await t.close().catch(() => undefined);
      await redis.stop();
    }
  });
});
