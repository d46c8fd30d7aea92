import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { clientThrottleId } from '../src/throttle.js';
import { startTestAuth, type TestAuth } from '../../test/support/auth-service.js';

const USERS = {
  hank: { password: 'hank-password', roles: ['user'] },
  ivy: { password: 'ivy-password', roles: ['user'] },
  jack: { password: 'jack-password', roles: ['user'] },
};

describe('login throttling across two instances', () => {
  let a: TestAuth;
  let b: TestAuth;

  beforeAll(async () => {
    a = await startTestAuth({ redisUrl: inject('redisUrl'), users: USERS });
    // the second instance shares Redis (and prefix), users and keys: another replica
    b = await startTestAuth({ redisUrl: inject('redisUrl'), keyPrefix: a.keyPrefix, usersFile: a.usersFile, keysJson: a.keysJson });
  });
  afterAll(async () => {
    await b.close();
    await a.close();
  });

  it('after 5 failures on either instance, every attempt gets 429, right password included', async () => {
    for (let i = 0; i < 5; i++) {
      const t = i % 2 ? b : a;
      const res = await t.login('hank', `wrong-${i}-password`, { 'x-forwarded-for': '198.51.100.1' });
      expect(res.statusCode).toBe(401);
    }
    for (const t of [a, b]) {
      const res = await t.login('hank', 'hank-password', { 'x-forwarded-for': '198.51.100.2' });
      expect(res.statusCode).toBe(429);
      expect(res.json()).toEqual({ error: 'too_many_requests', message: expect.any(String) });
      const retry = Number(res.headers['retry-after']);
      expect(Number.isInteger(retry)).toBe(true);
      expect(retry).toBeGreaterThanOrEqual(1);
      expect(retry).toBeLessThanOrEqual(15 * 60);
      expect(res.headers['set-cookie']).toBeUndefined();
    }
    // the counter lives in Redis with the window as its TTL
    const key = a.keys.throttle('account', 'hank');
    expect(await a.redis.get(key)).toBe('5');
    const pttl = await a.redis.pttl(key);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(15 * 60_000);
    // another account is not affected
    expect((await b.login('ivy', 'ivy-password', { 'x-forwarded-for': '198.51.100.2' })).statusCode).toBe(204);
    // once the window has passed (simulated: the key expires), the right password works again
    await a.redis.del(key);
    expect((await b.login('hank', 'hank-password', { 'x-forwarded-for': '198.51.100.2' })).statusCode).toBe(204);
  });

  it('a success clears the account counter', async () => {
    for (let i = 0; i < 4; i++) await a.login('ivy', 'nope-nope-nope', { 'x-forwarded-for': '198.51.100.3' });
    expect(await a.redis.get(a.keys.throttle('account', 'ivy'))).toBe('4');
    expect((await b.login('ivy', 'ivy-password', { 'x-forwarded-for': '198.51.100.3' })).statusCode).toBe(204);
    expect(await a.redis.get(a.keys.throttle('account', 'ivy'))).toBe(null);
  });

  it('throttles unknown user names exactly like known ones', async () => {
    for (let i = 0; i < 5; i++) await a.login('nobody', 'whatever-pass', { 'x-forwarded-for': '198.51.100.4' });
    const res = await b.login('nobody', 'whatever-pass', { 'x-forwarded-for': '198.51.100.5' });
    expect(res.statusCode).toBe(429);
  });

  it('a burst of parallel guesses cannot get past the limit', async () => {
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => (i % 2 ? a : b).login('jack', `guess-${i}-password`, { 'x-forwarded-for': '198.51.100.6' })),
    );
    const codes = results.map((r) => r.statusCode);
    expect(codes.filter((c) => c === 401)).toHaveLength(5);
    expect(codes.filter((c) => c === 429)).toHaveLength(7);
    await a.redis.del(a.keys.throttle('account', 'jack'));
  });
});

describe('login throttling per client IP', () => {
  let t: TestAuth;

  beforeAll(async () => {
    t = await startTestAuth({ redisUrl: inject('redisUrl'), users: USERS, env: { LOGIN_MAX_FAILURES_PER_IP: '3' } });
  });
  afterAll(() => t.close());

  const fromProxy = (xff: string) => ({ 'x-forwarded-for': xff });

  it('limits failed logins of one IP across all accounts', async () => {
    const ip = '203.0.113.10';
    for (const user of ['hank', 'ivy', 'someone']) expect((await t.login(user, 'bad-password-1', fromProxy(ip))).statusCode).toBe(401);
    const res = await t.login('jack', 'jack-password', fromProxy(ip));
    expect(res.statusCode).toBe(429);
    expect(Number(res.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    // jack's own account counter was not charged for the refused attempt
    expect(Number((await t.redis.get(t.keys.throttle('account', 'jack'))) ?? 0)).toBe(0);
    // another IP still gets in
    expect((await t.login('jack', 'jack-password', fromProxy('203.0.113.11'))).statusCode).toBe(204);
    const metrics = await t.svc.metrics.registry.metrics();
    expect(metrics).toMatch(/sessiongate_auth_throttled_total\{scope="ip"\} 1/);
    expect(metrics).toMatch(/sessiongate_auth_logins_total\{outcome="throttled"\} 1/);
  });

  it('successful logins do not use up the IP budget', async () => {
    const ip = '203.0.113.20';
    for (let i = 0; i < 6; i++) expect((await t.login('ivy', 'ivy-password', fromProxy(ip))).statusCode).toBe(204);
    expect(await t.redis.get(t.keys.throttle('ip', ip))).toBe('0');
  });

  it('believes X-Forwarded-For only from a trusted proxy', async () => {
    const client = '192.0.2.50';
    // through the gateway on this host (loopback, trusted by default): the client is the XFF hop
    await t.svc.app.inject({ method: 'POST', url: '/auth/login', remoteAddress: '127.0.0.1', headers: fromProxy(`10.9.9.9, ${client}`), payload: { username: 'x1', password: 'bad-password-1' } });
    expect(await t.redis.get(t.keys.throttle('ip', client))).toBe('1');
    // from anyone else the header is ignored: the peer is the client
    const stranger = '198.18.0.7';
    await t.svc.app.inject({ method: 'POST', url: '/auth/login', remoteAddress: stranger, headers: fromProxy(client), payload: { username: 'x2', password: 'bad-password-1' } });
    expect(await t.redis.get(t.keys.throttle('ip', client))).toBe('1');
    expect(await t.redis.get(t.keys.throttle('ip', stranger))).toBe('1');
    // so a stranger cannot dodge its own limit by naming other addresses
    for (const fake of ['192.0.2.1', '192.0.2.2']) {
      await t.svc.app.inject({ method: 'POST', url: '/auth/login', remoteAddress: stranger, headers: fromProxy(fake), payload: { username: 'x3', password: 'bad-password-1' } });
    }
    const res = await t.svc.app.inject({ method: 'POST', url: '/auth/login', remoteAddress: stranger, headers: fromProxy('192.0.2.3'), payload: { username: 'x4', password: 'bad-password-1' } });
    expect(res.statusCode).toBe(429);
  });

  it('counts IPv6 clients by their /64', () => {
    expect(clientThrottleId('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
    expect(clientThrottleId('2001:db8:1:2::9')).toBe('2001:db8:1:2::/64');
    expect(clientThrottleId('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(clientThrottleId('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(clientThrottleId('192.0.2.1')).toBe('192.0.2.1');
  });
});

describe('trusting nobody', () => {
  it('with SESSIONGATE_TRUSTED_PROXIES="" even loopback peers cannot name a client', async () => {
    const t = await startTestAuth({ redisUrl: inject('redisUrl'), users: USERS, env: { SESSIONGATE_TRUSTED_PROXIES: '' } });
    try {
      await t.login('hank', 'bad-password-1', { 'x-forwarded-for': '192.0.2.99' });
      expect(await t.redis.get(t.keys.throttle('ip', '192.0.2.99'))).toBe(null);
      expect(await t.redis.get(t.keys.throttle('ip', '127.0.0.1'))).toBe('1');
    } finally {
      await t.close();
    }
  });
});
