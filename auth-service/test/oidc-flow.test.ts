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
    expect(ours.get('sid')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    for (const hop of page.hops) for (const c of hop.setCookies) expect(c).not.toMatch(/eyJ/);
    // the flow cookie: HttpOnly, SameSite=Lax (the provider's redirect back carries it),
    // scoped to the OIDC endpoints, short-lived; and it is gone after the callback
    const start = await new WebClient().request(`${stack.base}/auth/oidc/demo/start?next=%2Fapp`);
    expect(start.status).toBe(303);
    expect(new URL(start.headers.get('location')!).origin).toBe(stack.idp.issuer);
    const flowCookie = start.headers.getSetCookie().find((c) => c.startsWith('sg_oidc='))!;
    expect(flowCookie).toMatch(/^sg_oidc=[A-Za-z0-9_-]{43}; Path=\/auth\/oidc\/; Max-Age=600; HttpOnly; SameSite=Lax$/);
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
});
