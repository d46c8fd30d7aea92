import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { sessionRef } from '@sessiongate/session';
import { CLIENT_ID, signInWithIdp, startOidcStack, type OidcStack } from '../../test/support/oidc-stack.js';
import { WebClient, readForm } from '../../test/support/web-client.js';
import { readSession } from '../../test/support/sessions.js';

// OpenID Connect Back-Channel Logout 1.0: the provider's logout token ends the sessions it
// names on every gateway within a second; a token that is not valid, or used twice, is
// refused and ends nothing.

const EVENT = { 'http://schemas.openid.net/event/backchannel-logout': {} };

describe('back-channel logout', () => {
  let stack: OidcStack;

  beforeAll(async () => {
    stack = await startOidcStack({ redisUrl: inject('redisUrl'), gateways: 2 });
  });
  afterAll(async () => {
    await stack?.close();
  });

  const endpoint = () => `${stack.authUrl}/auth/oidc/demo/backchannel-logout`;
  const post = (logoutToken: string) =>
    fetch(endpoint(), { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ logout_token: logoutToken }) });

  /** Signs in through the provider; resolves our cookie token and the web client (holding the provider's session). */
  async function signIn(user = 'sam', password = 'sam-idp-password') {
    const client = new WebClient();
    const page = await signInWithIdp(client, stack, user, password);
    expect(page.status).toBe(200);
    return { client, token: client.cookies(stack.base).get('sid')! };
  }

  /** The status each gateway answers for /app with this cookie token. */
  const statuses = (token: string) =>
    Promise.all(stack.gateways.map(async (g) => (await g.gw.app.inject({ url: '/app', headers: { cookie: `sid=${token}` } })).statusCode));

  it('the provider ending its session (end_session, confirmed) ends ours on both gateways within 1 s', async () => {
    const { client, token } = await signIn();
    const other = await signIn('ada', 'ada-idp-password');
    expect(await statuses(token)).toEqual([200, 200]);
    // the provider's own sign-out, as a user would do it there
    const confirm = await client.go(`${stack.idp.issuer}/session/end?client_id=${CLIENT_ID}`);
    const { action, fields } = readForm(confirm.body, confirm.url);
    const done = await client.go(action, { form: { ...fields, logout: 'yes' } });
    expect(done.status).toBe(200);
    expect(stack.idp.output()).toContain(`backchannel logout to ${CLIENT_ID} sent`);
    await vi.waitFor(async () => expect(await statuses(token)).toEqual([401, 401]), { timeout: 1000, interval: 25 });
    expect(await readSession(stack.auth.store, sessionRef(token))).toBeNull();
    // another user's session, from another provider session, is untouched
    expect(await statuses(other.token)).toEqual([200, 200]);
    expect(stack.logs()).toMatch(/"event":"oidc-backchannel-logout","provider":"demo","user":"oidc:demo:u-sam","ended":1/);
  });

  it('a logout token naming only sub ends every session of that user; replayed, it is refused', async () => {
    const a = await signIn();
    const b = await signIn();
    const logoutToken = await stack.idp.signLogoutToken({ aud: CLIENT_ID, sub: 'u-sam', events: EVENT });
    const res = await post(logoutToken);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    await vi.waitFor(async () => expect([...(await statuses(a.token)), ...(await statuses(b.token))]).toEqual([401, 401, 401, 401]), { timeout: 1000, interval: 25 });

    // a new session, then the same token again: refused, and the new session lives on
    const c = await signIn();
    const replay = await post(logoutToken);
    expect(replay.status).toBe(400);
    expect(await replay.json()).toEqual({ error: 'invalid_request', error_description: 'the logout token was already used' });
    expect(await statuses(c.token)).toEqual([200, 200]);
  });

  it('refuses logout tokens that are not valid, and ends nothing', async () => {
    const { token } = await signIn();
    const now = Math.floor(Date.now() / 1000);
    const { privateKey } = await generateKeyPair('RS256', { extractable: true });
    const stranger = await new SignJWT({ iss: stack.idp.issuer, aud: CLIENT_ID, sub: 'u-sam', iat: now, exp: now + 60, jti: 'j-stranger', events: EVENT })
      .setProtectedHeader({ alg: 'RS256', kid: stack.idp.jwks.keys[0]!.kid!, typ: 'logout+jwt' })
      .sign(privateKey);
    expect((await exportJWK(privateKey)).kty).toBe('RSA');
    const cases: [string, string, RegExp][] = [
      ['signed by another key', stranger, /not valid \(ERR_JWS_SIGNATURE_VERIFICATION_FAILED\)/],
      ['with a nonce', await stack.idp.signLogoutToken({ aud: CLIENT_ID, sub: 'u-sam', events: EVENT, nonce: 'n' }), /must not hold a nonce/],
      ['for another client', await stack.idp.signLogoutToken({ aud: 'other-client', sub: 'u-sam', events: EVENT }), /ERR_JWT_CLAIM_VALIDATION_FAILED/],
      ['from another issuer', await stack.idp.signLogoutToken({ iss: 'https://evil.example', aud: CLIENT_ID, sub: 'u-sam', events: EVENT }), /ERR_JWT_CLAIM_VALIDATION_FAILED/],
      ['without the event', await stack.idp.signLogoutToken({ aud: CLIENT_ID, sub: 'u-sam', events: { other: {} } }), /not a back-channel logout event/],
      ['without events', await stack.idp.signLogoutToken({ aud: CLIENT_ID, sub: 'u-sam' }), /ERR_JWT_CLAIM_VALIDATION_FAILED/],
      ['expired', await stack.idp.signLogoutToken({ aud: CLIENT_ID, sub: 'u-sam', events: EVENT, iat: now - 3600, exp: now - 1800 }), /ERR_JWT_EXPIRED/],
      ['without sub and sid', await stack.idp.signLogoutToken({ aud: CLIENT_ID, events: EVENT }), /names neither sub nor sid/],
      ['not a JWT', 'not-a-jwt', /ERR_JWS_INVALID/],
    ];
    for (const [what, logoutToken, reason] of cases) {
      const res = await post(logoutToken);
      expect(res.status, what).toBe(400);
      const body = (await res.json()) as { error: string; error_description: string };
      expect(body.error, what).toBe('invalid_request');
      expect(body.error_description, what).toMatch(reason);
    }
    expect((await post('')).status).toBe(400);
    expect(await statuses(token)).toEqual([200, 200]);
  });
});
