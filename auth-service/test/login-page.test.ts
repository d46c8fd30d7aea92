import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { sessionRef } from '@sessiongate/session';
import { safeNext } from '../src/routes/login-page.js';
import { cookieToken, startTestAuth, type TestAuth } from '../../test/support/auth-service.js';

// A browser signs in with the HTML form of GET /auth/login and gets redirects; every other
// client keeps the JSON API (login.test.ts, logout.test.ts).

const USERS = {
  alice: { password: 'alice-password-1', roles: ['user'] },
  mia: { password: 'mia-password-1', roles: ['user'] },
};
// what Chromium sends with a navigation, and with a form submission
const BROWSER_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8';
const FORM = 'application/x-www-form-urlencoded';

describe('the login page and browser forms', () => {
  let t: TestAuth;

  beforeAll(async () => {
    t = await startTestAuth({ redisUrl: inject('redisUrl'), users: USERS });
  });
  afterAll(() => t.close());

  const page = (query = '') => t.svc.app.inject({ method: 'GET', url: `/auth/login${query}`, headers: { accept: BROWSER_ACCEPT } });
  const formLogin = (fields: Record<string, string>, accept = BROWSER_ACCEPT) =>
    t.svc.app.inject({
      method: 'POST',
      url: '/auth/login',
      headers: { 'content-type': FORM, accept },
      payload: new URLSearchParams(fields).toString(),
    });

  it('serves an accessible form, with a policy that allows no script and no framing', async () => {
    const res = await page();
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(res.headers['content-security-policy']).toBe("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'");
    expect(res.headers['x-frame-options']).toBe('DENY');
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    const html = res.body;
    expect(html).toMatch(/^<!doctype html>\n<html lang="en">/);
    expect(html).toContain('<form method="post" action="/auth/login">');
    expect(html).toContain('<label for="username">User name</label>');
    expect(html).toMatch(/<input id="username" name="username" autocomplete="username"[^>]* required/);
    expect(html).toContain('<label for="password">Password</label>');
    expect(html).toMatch(/<input id="password" name="password" type="password" autocomplete="current-password" required/);
    expect(html).toContain('<button type="submit">Sign in</button>');
    expect(html).not.toMatch(/<script|role="alert"|name="next"/);
    // HEAD answers like GET, without the body
    const head = await t.svc.app.inject({ method: 'HEAD', url: '/auth/login' });
    expect(head.statusCode).toBe(200);
    expect(head.body).toBe('');
  });

  it('shows the error it is sent back with, and ignores any other value', async () => {
    expect((await page('?error=invalid')).body).toMatch(/<p id="error" role="alert">The user name or password is not correct\.<\/p>/);
    expect((await page('?error=throttled')).body).toMatch(/role="alert">Too many failed sign-ins/);
    expect((await page('?error=invalid')).body).toContain('aria-describedby="error" aria-invalid="true"');
    for (const q of ['?error=%3Cscript%3Ealert(1)%3C/script%3E', '?error=other', '?error=invalid&error=throttled', '?error=']) {
      const res = await page(q);
      expect(res.statusCode, q).toBe(200);
      expect(res.body, q).not.toMatch(/role="alert"|<script/);
    }
  });

  it('carries a same-site next on, escaped, and drops any other', async () => {
    const ok = await page(`?next=${encodeURIComponent('/app/orders?x=1&y="2"')}`);
    expect(ok.body).toContain('<input type="hidden" name="next" value="/app/orders?x=1&amp;y=&quot;2&quot;">');
    const tricky = await page(`?next=${encodeURIComponent('/a"><script>alert(1)</script>')}`);
    expect(tricky.body).not.toContain('<script>');
    expect(tricky.body).toContain('value="/a&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"');
    for (const bad of ['//evil.example', 'https://evil.example/', '/\\evil.example', 'javascript:alert(1)', '/ok\nSet-Cookie: x=1', 'app']) {
      expect((await page(`?next=${encodeURIComponent(bad)}`)).body, bad).not.toContain('name="next"');
    }
  });

  it('accepts only paths on this site as next (open-redirect safe)', () => {
    for (const good of ['/', '/app', '/app/x?y=1#z', '/api/orders/7', '/%2F%2Fevil']) expect(safeNext(good), good).toBe(good);
    for (const bad of [
      undefined,
      42,
      ['/app'],
      '',
      'app',
      '//evil.example',
      '///evil.example',
      '/\\evil.example',
      '/app\\..\\x',
      'https://evil.example',
      'http:/evil.example',
      'javascript:alert(1)',
      ' /app',
      '/app\r\nLocation: //evil',
      '/\t/evil.example',
      '/café',
      `/${'a'.repeat(2048)}`,
    ]) {
      expect(safeNext(bad), JSON.stringify(bad)).toBeNull();
    }
  });

  it('signs a browser in with a 303 to next, or to /, and the same cookie as the JSON login', async () => {
    const plain = await formLogin({ username: 'alice', password: USERS.alice.password });
    expect(plain.statusCode).toBe(303);
    expect(plain.headers.location).toBe('/');
    expect(plain.body).toBe('');
    const token = cookieToken(plain);
    expect(plain.headers['set-cookie']).toMatch(/^sid=[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{4}; Path=\/; HttpOnly; SameSite=Lax; Secure$/);
    expect(await t.redis.exists(t.keys.session(sessionRef(token)))).toBe(1);

    const next = await formLogin({ username: 'alice', password: USERS.alice.password, next: '/api/orders/7?view=full' });
    expect(next.statusCode).toBe(303);
    expect(next.headers.location).toBe('/api/orders/7?view=full');

    for (const bad of ['//evil.example/x', 'https://evil.example/', '/\\evil.example', 'javascript:alert(1)']) {
      const res = await formLogin({ username: 'alice', password: USERS.alice.password, next: bad });
      expect(res.statusCode, bad).toBe(303);
      expect(res.headers.location, bad).toBe('/');
    }
  });

  it('sends a failed browser login back to the form with the error and next, and no cookie', async () => {
    const res = await formLogin({ username: 'alice', password: 'wrong-password', next: '/app/x' });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/auth/login?error=invalid&next=%2Fapp%2Fx');
    // no session cookie: only the typed name, for the form, never in the URL
    expect(res.headers['set-cookie']).toBe('sg_login_name=alice; Path=/auth/login; Max-Age=300; HttpOnly; SameSite=Lax; Secure');
    // an unknown user is answered exactly alike
    const unknown = await formLogin({ username: 'nobody', password: 'wrong-password', next: '/app/x' });
    expect(unknown.statusCode).toBe(303);
    expect(unknown.headers.location).toBe(res.headers.location);
    expect(unknown.headers['set-cookie']).toMatch(/^sg_login_name=nobody; /);
    // and a bad next is not carried back
    const bad = await formLogin({ username: 'alice', password: 'wrong-password', next: '//evil.example' });
    expect(bad.headers.location).toBe('/auth/login?error=invalid');
    await t.redis.del(t.keys.throttle('account', 'alice'), t.keys.throttle('account', 'nobody'));
  });

  it('throttles browser logins exactly like JSON ones, keeping Retry-After on the redirect', async () => {
    // failures through the form count toward the same per-account limit (5 by default)
    for (let i = 0; i < 5; i++) {
      const res = await formLogin({ username: 'mia', password: `wrong-${i}` });
      expect(res.headers.location).toBe('/auth/login?error=invalid');
    }
    expect(await t.redis.get(t.keys.throttle('account', 'mia'))).toBe('5');
    // the right password too, once throttled
    const res = await formLogin({ username: 'mia', password: USERS.mia.password });
    expect(res.statusCode).toBe(303);
    const wait = Number(res.headers['retry-after']);
    expect(wait).toBeGreaterThan(0);
    // the page is told how long, to say it
    expect(res.headers.location).toBe(`/auth/login?error=throttled&wait=${wait}`);
    expect(String(res.headers['set-cookie'])).not.toMatch(/^sid=/);
    // and a JSON client sees the same throttle as a 429
    const json = await t.login('mia', USERS.mia.password);
    expect(json.statusCode).toBe(429);
    expect(json.json()).toMatchObject({ error: 'too_many_requests' });
    await t.redis.del(t.keys.throttle('account', 'mia'));
  });

  it('keeps the JSON API for everyone who is not a browser form', async () => {
    // a form body from a client that does not ask for HTML (curl -d): 204 / 401
    const curl = await formLogin({ username: 'alice', password: USERS.alice.password }, '*/*');
    expect(curl.statusCode).toBe(204);
    const curlBad = await formLogin({ username: 'alice', password: 'wrong-password' }, '*/*');
    expect(curlBad.statusCode).toBe(401);
    expect(curlBad.json()).toMatchObject({ error: 'invalid_credentials' });
    // JSON first in Accept wins, as the gateway decides
    expect((await formLogin({ username: 'alice', password: USERS.alice.password }, 'application/json, text/html')).statusCode).toBe(204);
    // a JSON body from a client that asks for HTML is still the JSON API
    const json = await t.login('alice', USERS.alice.password, { accept: BROWSER_ACCEPT });
    expect(json.statusCode).toBe(204);
    // a malformed form is a 400, as before
    const missing = await formLogin({ username: 'alice' });
    expect(missing.statusCode).toBe(400);
    expect(missing.json()).toMatchObject({ error: 'bad_request' });
    await t.redis.del(t.keys.throttle('account', 'alice'));
  });

  it('logs a browser out with a 303 to the login page and the clearing cookie', async () => {
    const token = cookieToken(await t.login('alice', USERS.alice.password));
    const header = await t.xSessionFor(token);
    const res = await t.svc.app.inject({
      method: 'POST',
      url: '/auth/logout',
      headers: { 'x-session': header, 'content-type': FORM, accept: BROWSER_ACCEPT },
      payload: '',
    });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/auth/login?notice=signed-out');
    expect(res.headers['set-cookie']).toMatch(/^sid=; Path=\/; Max-Age=0;/);
    expect(await t.redis.exists(t.keys.session(sessionRef(token)))).toBe(0);
    // without a session too (logging out twice is no error)
    const again = await t.svc.app.inject({ method: 'POST', url: '/auth/logout', headers: { 'content-type': FORM, accept: BROWSER_ACCEPT }, payload: '' });
    expect(again.statusCode).toBe(303);
    // a fetch() logout stays 204
    const fetchLike = await t.svc.app.inject({ method: 'POST', url: '/auth/logout', headers: { accept: '*/*' } });
    expect(fetchLike.statusCode).toBe(204);
  });

  it('keeps the typed user name, says how long to wait, and says the user has signed out', async () => {
    const failed = await formLogin({ username: 'alice', password: 'wrong-password' });
    const cookie = String(failed.headers['set-cookie']).split(';')[0]!;
    const back = await t.svc.app.inject({ method: 'GET', url: failed.headers.location!, headers: { accept: BROWSER_ACCEPT, cookie } });
    expect(back.body).toMatch(/<input id="username" name="username"[^>]* value="alice"/);
    // the password field gets the focus then
    expect(back.body).toMatch(/<input id="password"[^>]* autofocus/);
    // only after a failure: a fresh visit starts empty
    expect((await t.svc.app.inject({ method: 'GET', url: '/auth/login', headers: { cookie } })).body).not.toContain('value="alice"');
    // escaped like everything else
    const odd = await t.svc.app.inject({ method: 'GET', url: '/auth/login?error=invalid', headers: { cookie: `sg_login_name=${encodeURIComponent('"><b>x')}` } });
    expect(odd.body).toContain('value="&quot;&gt;&lt;b&gt;x"');

    expect((await page('?error=throttled&wait=900')).body).toContain('Too many failed sign-ins. Try again in 15 minutes.');
    expect((await page('?error=throttled&wait=30')).body).toContain('Try again in 30 seconds.');
    expect((await page('?error=throttled&wait=nonsense')).body).toContain('Wait a while, then try again.');

    const out = await page('?notice=signed-out&next=%2Fadmin');
    expect(out.body).toContain('<p id="notice" role="status">You have signed out.</p>');
    expect(out.body).toContain('<input type="hidden" name="next" value="/admin">');
    await t.redis.del(t.keys.throttle('account', 'alice'));
  });

  it('sends a browser form logout back with its next', async () => {
    const token = cookieToken(await t.login('alice', USERS.alice.password));
    const res = await t.svc.app.inject({
      method: 'POST',
      url: '/auth/logout',
      headers: { 'x-session': await t.xSessionFor(token), 'content-type': FORM, accept: BROWSER_ACCEPT },
      payload: 'next=%2Fadmin%3Fx%3D1',
    });
    expect(res.statusCode).toBe(303);
    expect(res.headers.location).toBe('/auth/login?notice=signed-out&next=%2Fadmin%3Fx%3D1');
  });
});

describe('the login page: configured landing page and product name', () => {
  let t: TestAuth;
  beforeAll(async () => {
    t = await startTestAuth({
      redisUrl: inject('redisUrl'),
      users: USERS,
      env: { LOGIN_DEFAULT_NEXT: '/home', SESSIONGATE_BRAND_NAME: 'Acme Orders', SESSIONGATE_BRAND_LOGO_URL: 'https://cdn.example.com/acme.svg' },
    });
  });
  afterAll(() => t.close());

  it('lands on LOGIN_DEFAULT_NEXT and shows the brand, allowing just the logo', async () => {
    const res = await t.svc.app.inject({
      method: 'POST',
      url: '/auth/login',
      headers: { 'content-type': FORM, accept: BROWSER_ACCEPT },
      payload: new URLSearchParams({ username: 'alice', password: USERS.alice.password }).toString(),
    });
    expect(res.headers.location).toBe('/home');
    const page = await t.svc.app.inject({ method: 'GET', url: '/auth/login' });
    expect(page.body).toContain('<title>Sign in · Acme Orders</title>');
    expect(page.body).toContain('<header class="brand"><img src="https://cdn.example.com/acme.svg" alt=""><span>Acme Orders</span></header>');
    expect(page.headers['content-security-policy']).toBe(
      "default-src 'none'; style-src 'unsafe-inline'; img-src https://cdn.example.com; form-action 'self'; frame-ancestors 'none'",
    );
  });
});
