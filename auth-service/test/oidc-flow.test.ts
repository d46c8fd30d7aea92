import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { userIdFor } from '../src/oidc/rules.js';
import { OIDC_USERS, callbackUrlFor, signInWithIdp, startOidcStack, type OidcStack } from '../../test/support/oidc-stack.js';
import { WebClient, readForm } from '../../test/support/web-client.js';

// OpenID Connect sign-in end to end: a real provider process, the auth service and a
// gateway on real sockets, an HTTP client that follows redirects and fills in the
// provider's form. The upstream sees the mapped roles in X-Session; every way the sign-in
// can go wrong ends on a clear page with no session.

const ada = OIDC_USERS.find((u) => u.username === 'ada')!;
const sam = OIDC_USERS.find((u) => u.username === 'sam')!;

describe('OpenID Connect sign-in through the gateway', () => {
  let stack: OidcStack;

  beforeAll(async () => {
    stack = await startOidcStack({ redisUrl: inject('redisUrl'), users: { pat: { password: 'pat-password', roles: ['user'] } } });
  });
  afterAll(async () => {
    await stack?.close();
  });

  const sessionsOf = (sub: string) => stack.auth.store.list(userIdFor('demo', sub));

  it('signs in with the provider, lands on next, and the upstream sees the mapped roles and profile', async () => {
    const client = new WebClient();
    const page = await signInWithIdp(client, stack, ada.username, ada.password, '/app/dashboard?tab=1');
    expect(page.status).toBe(200);
    expect(page.url).toBe(`${stack.base}/app/dashboard?tab=1`);
    const xs = decodeJwt(stack.app.last().headers['x-session'] as string);
    expect(xs.sub).toBe('oidc:demo:u-ada');
    expect(xs.roles).toEqual(['user', 'admin']);
    expect(xs).toMatchObject({ name: 'Ada Admin', email: 'ada@example.com', idp: 'demo' });
    // the browser holds our opaque cookie, never a provider token
    const ours = client.cookies(stack.base);
    expect([...ours.keys()]).toEqual(['sid']);
    expect(ours.get('sid')).toMatch(/^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{4}$/);
    for (const hop of page.hops) for (const c of hop.setCookies) expect(c).not.toMatch(/eyJ/);
    // the flow cookie: HttpOnly, SameSite=Lax (the provider's redirect back carries it),
    // scoped to the OIDC endpoints, short-lived; and it is gone after the callback
    const start = await new WebClient().request(`${stack.base}/auth/oidc/demo/start?next=%2Fapp`);
    expect(start.status).toBe(303);
    expect(new URL(start.headers.get('location')!).origin).toBe(stack.idp.issuer);
    const flowCookie = start.headers.getSetCookie().find((c) => c.startsWith('sg_oidc='))!;
    expect(flowCookie).toMatch(/^sg_oidc=[A-Za-z0-9_-]{43}; Path=\/auth\/oidc\/; Max-Age=600; HttpOnly; SameSite=Lax; Secure$/);
    const authorize = new URL(start.headers.get('location')!).searchParams;
    expect(authorize.get('code_challenge_method')).toBe('S256');
    expect(authorize.get('state')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(authorize.get('nonce')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(authorize.get('redirect_uri')).toBe(`${stack.base}/auth/oidc/demo/callback`);
    expect(client.cookies(stack.base).has('sg_oidc')).toBe(false);
    // no token of the provider in a log line
    expect(stack.logs()).toContain('"event":"oidc-login"');
    expect(stack.logs()).not.toMatch(/eyJ[A-Za-z0-9_-]{10,}/);
    expect(stack.logs()).not.toContain('test-client-secret');
    expect(await sessionsOf('u-ada')).toHaveLength(1);
    const me = await client.go(`${stack.base}/auth/me`);
    expect(me.status).toBe(200);
    expect(JSON.parse(me.body)).toEqual({ sub: 'oidc:demo:u-ada', roles: ['user', 'admin'] });
  });

  it('a user no rule admits gets a 403 page and no session', async () => {
    const client = new WebClient();
    const page = await signInWithIdp(client, stack, 'eve', 'eve-idp-password');
    expect(page.status).toBe(403);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.body).toContain('Not allowed to sign in');
    expect(page.body).toContain('Your Demo IdP account is not allowed to sign in here.');
    expect(client.cookies(stack.base).has('sid')).toBe(false);
    expect(await sessionsOf('u-eve')).toEqual([]);
    expect(stack.logs()).toMatch(/"outcome":"forbidden","reason":"no_rule"/);
  });

  it('an address the provider did not verify is refused, even in an allowed domain', async () => {
    const client = new WebClient();
    const page = await signInWithIdp(client, stack, 'una', 'una-idp-password');
    expect(page.status).toBe(403);
    expect(await sessionsOf('u-una')).toEqual([]);
    expect(stack.logs()).toMatch(/"outcome":"forbidden","reason":"required_condition"/);
  });

  it('a staff member gets only the user role, and /admin stays closed to them', async () => {
    const client = new WebClient();
    const page = await signInWithIdp(client, stack, sam.username, sam.password);
    expect(page.status).toBe(200);
    expect(decodeJwt(stack.app.last().headers['x-session'] as string).roles).toEqual(['user']);
    expect((await client.go(`${stack.base}/admin`)).status).toBe(403);
  });

  /** The page of a failed sign-in: HTML, its status, the failure named, no session cookie. */
  function expectFailure(page: { status: number; body: string; headers: Headers }, status: number, failure: string) {
    expect(page.status).toBe(status);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.body).toContain(`data-failure="${failure}"`);
    expect(page.body).toContain('Back to sign-in');
  }

  it('a callback with the wrong state is refused, and no session is made', async () => {
    const client = new WebClient();
    const cb = new URL(await callbackUrlFor(client, stack, sam.username, sam.password));
    cb.searchParams.set('state', 'not-the-state');
    const page = await client.go(cb.href);
    expectFailure(page, 400, 'stale');
    expect(client.cookies(stack.base).has('sid')).toBe(false);
    expect(stack.logs()).toContain('"reason":"state does not match"');
  });

  it('a callback without the flow cookie (another browser) is refused', async () => {
    const cb = await callbackUrlFor(new WebClient(), stack, sam.username, sam.password);
    const other = new WebClient();
    const page = await other.go(cb);
    expectFailure(page, 400, 'stale');
    expect(other.cookies(stack.base).has('sid')).toBe(false);
  });

  it('a replayed callback is refused: the flow state is single use', async () => {
    const client = new WebClient();
    const cb = await callbackUrlFor(client, stack, sam.username, sam.password);
    const flowKey = client.cookies(stack.base).get('sg_oidc')!;
    const first = await client.go(cb);
    expect(first.status).toBe(200);
    const before = (await sessionsOf('u-sam')).length;
    // the same callback, the flow cookie sent again as an attacker who copied both would
    const replay = new WebClient();
    replay.cookies(stack.base).set('sg_oidc', flowKey);
    const page = await replay.go(cb);
    expectFailure(page, 400, 'stale');
    expect(replay.cookies(stack.base).has('sid')).toBe(false);
    expect(await sessionsOf('u-sam')).toHaveLength(before);
  });

  it('a used code with a fresh flow state is refused by the provider', async () => {
    const client = new WebClient();
    const cb = new URL(await callbackUrlFor(client, stack, sam.username, sam.password));
    expect((await client.go(cb.href)).status).toBe(200);
    const before = (await sessionsOf('u-sam')).length;
    // a new sign-in of another browser, answered with the old code
    const other = new WebClient();
    const start = await other.request(`${stack.base}/auth/oidc/demo/start`);
    const state = new URL(start.headers.get('location')!).searchParams.get('state')!;
    cb.searchParams.set('state', state);
    const page = await other.go(cb.href);
    expectFailure(page, 400, 'invalid_response');
    expect(other.cookies(stack.base).has('sid')).toBe(false);
    expect(await sessionsOf('u-sam')).toHaveLength(before);
    expect(stack.logs()).toMatch(/"outcome":"invalid_response","reason":"[^"]*invalid_grant/);
  });

  for (const mode of ['signature', 'expired', 'iss', 'aud', 'nonce'] as const) {
    it(`an ID token with a bad ${mode} is refused, and no session is made`, async () => {
      const before = (await sessionsOf('u-sam')).length;
      await stack.idp.tamper(mode);
      const client = new WebClient();
      const page = await signInWithIdp(client, stack, sam.username, sam.password);
      expectFailure(page, 400, 'invalid_response');
      expect(page.body).toContain('The answer from Demo IdP could not be verified');
      expect(client.cookies(stack.base).has('sid')).toBe(false);
      expect(await sessionsOf('u-sam')).toHaveLength(before);
      // and the next, honest sign-in works
      expect((await signInWithIdp(new WebClient(), stack, sam.username, sam.password)).status).toBe(200);
    });
  }

  it('the provider denying the sign-in ends on a page, not a session', async () => {
    const client = new WebClient();
    const start = await client.request(`${stack.base}/auth/oidc/demo/start`);
    const state = new URL(start.headers.get('location')!).searchParams.get('state')!;
    const page = await client.go(`${stack.base}/auth/oidc/demo/callback?error=access_denied&state=${state}`);
    expectFailure(page, 400, 'refused');
    expect(stack.logs()).toContain('the provider answered access_denied');
  });

  it('an unknown provider is a 404 page', async () => {
    expectFailure(await new WebClient().go(`${stack.base}/auth/oidc/nope/start`), 404, 'unknown_provider');
  });

  it('signing out of a provider session hands the browser on to the provider\'s sign-out', async () => {
    const client = new WebClient();
    expect((await signInWithIdp(client, stack, sam.username, sam.password)).status).toBe(200);
    const token = client.cookies(stack.base).get('sid')!;
    const out = await client.go(`${stack.base}/auth/logout`, { form: {} });
    expect(out.url).toBe(`${stack.base}/auth/oidc/demo/signed-out`);
    expect(out.status).toBe(200);
    const m = /<a id="continue" href="([^"]+)"/.exec(out.body)!;
    const endSession = new URL(m[1]!.replace(/&amp;/g, '&'));
    expect(endSession.origin).toBe(stack.idp.issuer);
    expect(endSession.searchParams.get('client_id')).toBe('sessiongate-test');
    expect(endSession.searchParams.get('post_logout_redirect_uri')).toBe(`${stack.base}/auth/login`);
    expect(client.cookies(stack.base).has('sid')).toBe(false);
    // our session is over whatever the provider does
    const again = new WebClient();
    again.cookies(stack.base).set('sid', token);
    expect((await again.go(`${stack.base}/app`)).status).toBe(401);
    // the provider's page asks to confirm, then comes back to our sign-in page
    const confirm = await client.go(endSession.href);
    const { action, fields } = readForm(confirm.body, confirm.url);
    const back = await client.go(action, { form: { ...fields, logout: 'yes' } });
    expect(back.url).toBe(`${stack.base}/auth/login`);
    expect(back.body).toContain('Sign in with Demo IdP');
  });

  it('password sign-in works next to it', async () => {
    const res = await stack.auth.login('pat', 'pat-password');
    expect(res.statusCode).toBe(204);
    const page = await new WebClient().go(`${stack.base}/auth/login`);
    expect(page.body).toContain('<form method="post" action="/auth/login">');
    expect(page.body).toContain('>Sign in with Demo IdP</a>');
  });
});
