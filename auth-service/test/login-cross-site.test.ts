import type { AddressInfo } from 'node:net';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { isWellFormedToken } from '@sessiongate/session';
import { cookieToken, startTestAuth, type TestAuth } from '../../test/support/auth-service.js';
import { routesYaml, startTestGateway, type TestGateway } from '../../test/support/gateway.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';

// Login CSRF: a page on another site posts the attacker's name and password to /auth/login;
// if that signs the visitor's browser in, whatever they do next lands in the attacker's
// account. The gateway refuses it whether or not a session cookie is present, and the auth
// service refuses it again on its own. Clients that are no browser (curl) keep working.

const EVIL = { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' };
const FORM = { 'content-type': 'application/x-www-form-urlencoded', accept: 'text/html,application/xhtml+xml' };
const MALLORY = 'username=mallory&password=mallory-password-1';

let auth: TestAuth;
let authUrl: string;
let gw: TestGateway;
let echo: Upstream;
let echoGw: TestGateway;

beforeAll(async () => {
  auth = await startTestAuth({
    redisUrl: inject('redisUrl'),
    users: { mallory: { password: 'mallory-password-1', roles: ['user'] }, vic: { password: 'vic-password-1', roles: ['user'] } },
    env: { SESSIONGATE_ALLOWED_ORIGINS: 'https://app.example' },
  });
  await auth.svc.app.listen({ host: '127.0.0.1', port: 0 });
  authUrl = `http://127.0.0.1:${(auth.svc.app.server.address() as AddressInfo).port}`;
  echo = await startUpstream('echo');
  gw = await startTestGateway({
    redisUrl: inject('redisUrl'),
    routes: routesYaml({ auth: authUrl, public: echo.url }),
    keyPrefix: auth.keyPrefix,
    keysJson: auth.keysJson,
  });
  // the same gateway rules in front of an upstream that records what reaches it
  echoGw = await startTestGateway({ redisUrl: inject('redisUrl'), routes: routesYaml({ public: echo.url }) });
});
afterAll(async () => {
  await echoGw?.close();
  await gw?.close();
  await echo?.close();
  await auth?.close();
});

const viaGateway = (g: TestGateway, url: string, headers: Record<string, string>, payload = MALLORY): Promise<LightMyRequestResponse> =>
  g.gw.app.inject({ method: 'POST', url, headers: { host: 'gw.example', ...headers }, payload });

describe('the gateway, on the auth route', () => {
  it('refuses a login or logout from another site, with no session cookie', async () => {
    for (const path of ['/auth/login', '/auth/logout']) {
      for (const headers of <Record<string, string>[]>[EVIL, { origin: 'https://evil.example' }, { 'sec-fetch-site': 'cross-site' }, { origin: 'null' }, { referer: 'https://evil.example/x' }, { 'sec-fetch-site': 'same-site', origin: 'https://www.gw.example' }]) {
        echo.clear();
        const res = await viaGateway(echoGw, path, { ...FORM, ...headers });
        expect(res.statusCode, `${path} ${JSON.stringify(headers)}`).toBe(403);
        expect(res.headers['set-cookie']).toBeUndefined();
        expect(echo.received).toEqual([]);
      }
    }
  });

  it('lets same-origin browsers and clients that are no browser through', async () => {
    for (const headers of <Record<string, string>[]>[{ 'sec-fetch-site': 'same-origin', origin: 'http://gw.example' }, { origin: 'http://gw.example' }, { referer: 'http://gw.example/auth/login' }, {}]) {
      echo.clear();
      const res = await viaGateway(echoGw, '/auth/login', { ...FORM, ...headers });
      expect(res.statusCode, JSON.stringify(headers)).toBe(200);
      expect(echo.received).toHaveLength(1);
    }
  });
});

describe('the auth service itself', () => {
  const direct = (url: string, headers: Record<string, string>, payload: string | object = MALLORY) =>
    auth.svc.app.inject({ method: 'POST', url, headers: { host: '127.0.0.1:4000', ...headers }, payload });

  it('refuses a cross-site login: 403 JSON, or the sign-in page saying so for a browser form', async () => {
    const json = await direct('/auth/login', { ...EVIL }, { username: 'mallory', password: 'mallory-password-1' });
    expect(json.statusCode).toBe(403);
    expect(json.json()).toEqual({ error: 'csrf_rejected', message: expect.any(String) });
    expect(json.headers['set-cookie']).toBeUndefined();

    const form = await direct('/auth/login', { ...FORM, ...EVIL });
    expect(form.statusCode).toBe(403);
    expect(form.headers['content-type']).toMatch(/^text\/html/);
    expect(form.body).toContain('came from another site');
    expect(form.headers['set-cookie']).toBeUndefined();

    for (const headers of <Record<string, string>[]>[{ origin: 'https://evil.example' }, { origin: 'null' }, { 'sec-fetch-site': 'cross-site' }, { 'sec-fetch-site': 'same-site' }]) {
      expect((await direct('/auth/login', { ...FORM, ...headers })).statusCode, JSON.stringify(headers)).toBe(403);
    }
  });

  it('refuses a cross-site logout, and the session lives on', async () => {
    const login = await auth.login('vic', 'vic-password-1');
    const xSession = await auth.xSessionFor(cookieToken(login));
    for (const path of ['/auth/logout', '/auth/logout-all']) {
      const res = await direct(path, { ...EVIL, 'x-session': xSession }, '');
      expect(res.statusCode, path).toBe(403);
      expect(res.headers['set-cookie']).toBeUndefined();
    }
    const me = await auth.svc.app.inject({ method: 'GET', url: '/auth/me', headers: { 'x-session': await auth.xSessionFor(cookieToken(login)) } });
    expect(me.statusCode).toBe(200);
    const out = await direct('/auth/logout', { origin: 'http://127.0.0.1:4000', 'x-session': xSession }, '');
    expect(out.statusCode).toBe(204);
  });

  it('accepts its own origin (Host or X-Forwarded-Host), an allowed origin, and clients that are no browser', async () => {
    const ok: Record<string, string>[] = [
      { 'sec-fetch-site': 'same-origin' },
      { origin: 'http://127.0.0.1:4000', 'sec-fetch-site': 'same-origin' },
      { origin: 'http://127.0.0.1:4000' },
      { origin: 'https://gw.example', 'x-forwarded-host': 'gw.example' },
      { origin: 'https://app.example', 'sec-fetch-site': 'cross-site' },
      {},
    ];
    for (const headers of ok) {
      const res = await direct('/auth/login', headers, { username: 'mallory', password: 'mallory-password-1' });
      expect(res.statusCode, JSON.stringify(headers)).toBe(204);
      expect(isWellFormedToken(cookieToken(res))).toBe(true);
    }
  });
});

describe('through the gateway to the auth service', () => {
  it('a cross-site form post no longer signs the browser in; a same-origin one and curl do', async () => {
    const evil = await viaGateway(gw, '/auth/login', { ...FORM, ...EVIL });
    expect(evil.statusCode).toBe(403);
    expect(evil.headers['set-cookie']).toBeUndefined();

    const own = await viaGateway(gw, '/auth/login', { ...FORM, origin: 'http://gw.example', 'sec-fetch-site': 'same-origin' });
    expect(own.statusCode).toBe(303);
    expect(isWellFormedToken(cookieToken(own))).toBe(true);

    const curl = await viaGateway(gw, '/auth/login', { 'content-type': 'application/json' }, JSON.stringify({ username: 'mallory', password: 'mallory-password-1' }));
    expect(curl.statusCode).toBe(204);
    expect(isWellFormedToken(cookieToken(curl))).toBe(true);
  });
});
