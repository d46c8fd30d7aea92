import { createHash } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseRecord, sessionRef, userTag } from '@sessiongate/session';
import { cookieToken, startTestAuth, type TestAuth } from '../../test/support/auth-service.js';

const ALICE_PASSWORD = 'correct horse battery staple';

describe('POST /auth/login', () => {
  let t: TestAuth;
  const logs: string[] = [];
  const logStream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString('utf8'));
      cb();
    },
  });

  beforeAll(async () => {
    t = await startTestAuth({
      redisUrl: inject('redisUrl'),
      logStream,
      users: {
        alice: { password: ALICE_PASSWORD, roles: ['user', 'admin'], profile: { name: 'Alice Example', email: 'alice@example.com', level: 3 } },
        bob: { password: 'bob-password-1', roles: ['user'] },
      },
    });
  });
  afterAll(() => t.close());

  it('answers 204 with a session cookie for a JSON login', async () => {
    const res = await t.login('alice', ALICE_PASSWORD, { 'user-agent': 'vitest-agent/1.0' });
    expect(res.statusCode).toBe(204);
    expect(res.body).toBe('');
    expect(res.headers['cache-control']).toBe('no-store');
    const setCookie = res.headers['set-cookie'] as string;
    expect(typeof setCookie).toBe('string');
    const parts = setCookie.split('; ');
    const token = parts[0]!.slice('sid='.length);
    // 256 random bits, base64url, no padding; then the user's slot tag
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{4}$/);
    expect(Buffer.from(token.slice(0, 43), 'base64url')).toHaveLength(32);
    expect(parts).toEqual(expect.arrayContaining(['Path=/', 'HttpOnly', 'SameSite=Lax', 'Secure']));
    expect(setCookie).not.toMatch(/Max-Age|Expires|Domain/i);
  });

  it('answers 204 for a form-encoded login', async () => {
    const res = await t.svc.app.inject({
      method: 'POST',
      url: '/auth/login',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `username=alice&password=${encodeURIComponent(ALICE_PASSWORD)}`,
    });
    expect(res.statusCode).toBe(204);
    expect(cookieToken(res)).toMatch(/^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{4}$/);
  });

  it('stores the record under a SHA-256 of the token in the user\'s slot, never the token itself', async () => {
    const res = await t.login('alice', ALICE_PASSWORD, { 'user-agent': 'vitest-agent/1.0' });
    const token = cookieToken(res);
    // the sid: 132 bits of SHA-256(token); the tag: 24 bits of SHA-256(sub), shared by the index
    const sid = createHash('sha256').update(token).digest('base64url').slice(0, 22);
    const tag = createHash('sha256').update('alice').digest('base64url').slice(0, 4);
    expect(token.endsWith(`.${tag}`)).toBe(true);
    expect(sessionRef(token)).toEqual({ tag, sid });
    expect(userTag('alice')).toBe(tag);
    const key = `${t.keyPrefix}s:{${tag}}${sid}`;
    expect(t.keys.session(sessionRef(token))).toBe(key);
    // the index is named by more of the same hash: the user id is stored once, in the records
    const userHash = createHash('sha256').update('alice').digest('base64url').slice(4, 20);
    expect(t.keys.userIndex('alice')).toBe(`${t.keyPrefix}i:{${tag}}${userHash}`);
    // the record is one JSON object that names its user first
    expect(await t.redis.get(key)).toMatch(/^\{"sub":"alice","2":\[/);
    const raw = await t.redis.get(key);
    expect(raw).not.toBeNull();
    expect(raw).not.toContain(token);
    expect(await t.redis.exists(`${t.keyPrefix}s:${token}`)).toBe(0);

    const record = parseRecord(raw!, sid);
    expect(record.sub).toBe('alice');
    expect(record.roles).toEqual(['user', 'admin']);
    expect(record.claims).toEqual({ name: 'Alice Example', email: 'alice@example.com', level: 3 });
    expect(record.userAgent).toBe('vitest-agent/1.0');
    expect(record.sid).toBe(sid);
    expect(record.absoluteExpiresAt - record.createdAt).toBe(t.config.session.absoluteTimeoutMs);
    expect(record.idleTimeoutMs).toBe(t.config.session.idleTimeoutMs);
    // the key lives for the idle timeout
    const pttl = await t.redis.pttl(key);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(t.config.session.idleTimeoutMs);
    // and the user's index knows it
    const members = await t.redis.zrange(t.keys.userIndex('alice'), 0, '-1');
    expect(members).toContain(sid);
    // short members keep the index in Redis' compact encoding
    expect(await t.redis.call('OBJECT', 'ENCODING', t.keys.userIndex('alice'))).toBe('listpack');
  });

  it('matches the user name case-insensitively', async () => {
    const res = await t.login('  Alice ', ALICE_PASSWORD);
    expect(res.statusCode).toBe(204);
  });

  it('mints a new token on every login and ends the session the browser had before', async () => {
    const first = cookieToken(await t.login('alice', ALICE_PASSWORD));
    const oldHeader = await t.xSessionFor(first);
    const second = cookieToken(await t.login('alice', ALICE_PASSWORD, { 'x-session': oldHeader }));
    expect(second).not.toBe(first);
    expect(await t.redis.exists(t.keys.session(sessionRef(first)))).toBe(0);
    expect(await t.redis.exists(t.keys.session(sessionRef(second)))).toBe(1);
  });

  it('answers unknown user and wrong password identically', async () => {
    const unknown = await t.login('mallory', 'some-password-123');
    const wrong = await t.login('bob', 'some-password-123');
    expect(unknown.statusCode).toBe(401);
    expect(unknown.json()).toEqual({ error: 'invalid_credentials', message: expect.any(String) });
    const strip = (h: Record<string, unknown>) => {
      const { date: _d, ...rest } = h;
      return rest;
    };
    expect(wrong.statusCode).toBe(unknown.statusCode);
    expect(wrong.body).toBe(unknown.body);
    expect(strip(wrong.headers)).toEqual(strip(unknown.headers));
    expect(wrong.headers['set-cookie']).toBeUndefined();
  });

  it('answers a lone UTF-16 surrogate in the user name as a failed login, never 503', async () => {
    const before = logs.length;
    for (const username of ['\\ud800', 'x\\udfffy', '\\ud83d']) {
      const res = await t.svc.app.inject({
        method: 'POST',
        url: '/auth/login',
        headers: { 'content-type': 'application/json' },
        payload: `{"username":"${username}","password":"some-password-123"}`,
      });
      expect(res.statusCode).toBe(401);
      expect(res.json()).toEqual({ error: 'invalid_credentials', message: expect.any(String) });
    }
    // counted against an account like any other unknown name, and nothing logged as an error
    expect(await t.redis.get(t.keys.throttle('account', '\ufffd'))).toBe('2');
    expect(logs.slice(before).join('')).not.toMatch(/"level":50/);
  });

  it('refuses a password over 1024 bytes with 400 before hashing', async () => {
    const before = await t.redis.get(t.keys.throttle('account', 'bob'));
    const res = await t.login('bob', 'é'.repeat(513)); // 1026 bytes, 513 characters
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'bad_request' });
    expect(res.json().message).toMatch(/1024 bytes/);
    const longer = await t.login('bob', 'x'.repeat(5000));
    expect(longer.statusCode).toBe(400);
    // a refused body is not a failed login: the account is not throttled by it
    expect(await t.redis.get(t.keys.throttle('account', 'bob'))).toBe(before);
  });

  it('answers 400 for a missing field, 415 for other bodies', async () => {
    const missing = await t.svc.app.inject({ method: 'POST', url: '/auth/login', payload: { username: 'bob' } });
    expect(missing.statusCode).toBe(400);
    expect(missing.json().error).toBe('bad_request');
    const bad = await t.svc.app.inject({ method: 'POST', url: '/auth/login', headers: { 'content-type': 'application/json' }, payload: '{"username":"bob","password":' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toEqual({ error: 'bad_request', message: 'The body is not valid JSON' });
    const text = await t.svc.app.inject({ method: 'POST', url: '/auth/login', headers: { 'content-type': 'application/xml' }, payload: '<bob/>' });
    expect(text.statusCode).toBe(415);
    expect(text.json().error).toBe('unsupported_media_type');
  });

  it('never puts the token or the password in a response body or a log line', async () => {
    const res = await t.login('alice', ALICE_PASSWORD);
    const token = cookieToken(res);
    await t.login('alice', 'wrong-password-xyz');
    const all = logs.join('');
    expect(all.length).toBeGreaterThan(0);
    expect(all).toContain('"event":"login"');
    expect(all).not.toContain(token);
    expect(all).not.toContain(token.slice(0, 43));
    expect(all).not.toContain(ALICE_PASSWORD);
    expect(all).not.toContain('wrong-password-xyz');
    expect(res.body).not.toContain(token);
  });

  it('counts logins by outcome', async () => {
    const text = await t.svc.metrics.registry.metrics();
    expect(text).toMatch(/sessiongate_auth_logins_total\{outcome="success"\} [1-9]/);
    expect(text).toMatch(/sessiongate_auth_logins_total\{outcome="invalid_credentials"\} [1-9]/);
    expect(text).toMatch(/sessiongate_auth_logins_total\{outcome="bad_request"\} [1-9]/);
    expect(text).toMatch(/sessiongate_auth_sessions_created_total [1-9]/);
    expect(text).toMatch(/sessiongate_auth_sessions_revoked_total\{reason="replaced"\} 1/);
  });
});

describe('login cookie settings', () => {
  it('uses a __Host- cookie name and keeps Secure', async () => {
    const t = await startTestAuth({ redisUrl: inject('redisUrl'), env: { SESSION_COOKIE_NAME: '__Host-sid' }, users: { carol: { password: 'carol-password' } } });
    try {
      const res = await t.login('carol', 'carol-password');
      expect(res.statusCode).toBe(204);
      const sc = res.headers['set-cookie'] as string;
      expect(sc).toMatch(/^__Host-sid=[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{4}; Path=\/; HttpOnly; SameSite=Lax; Secure$/);
    } finally {
      await t.close();
    }
  });

  it('drops Secure only when COOKIE_SECURE=false', async () => {
    const t = await startTestAuth({ redisUrl: inject('redisUrl'), env: { COOKIE_SECURE: 'false' }, users: { carol: { password: 'carol-password' } } });
    try {
      const res = await t.login('carol', 'carol-password');
      expect(res.headers['set-cookie']).not.toMatch(/Secure/);
      expect(res.headers['set-cookie']).toMatch(/HttpOnly/);
    } finally {
      await t.close();
    }
  });
});
