import { createLocalJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { startTestGateway, routesYaml, type TestGateway } from '../../test/support/gateway.js';
import { rawRequest } from '../../test/support/raw-http.js';
import { headerValues, startUpstream, type Upstream } from '../../test/support/upstream.js';

// The request path end to end: cookie → Redis session → policy → signed X-Session →
// upstream, on a real Redis and real upstream servers.

let up: Upstream;
let authUp: Upstream;
let t: TestGateway;

beforeAll(async () => {
  up = await startUpstream('svc');
  authUp = await startUpstream('auth');
  t = await startTestGateway({ redisUrl: inject('redisUrl'), routes: routesYaml({ public: up.url, auth: authUp.url }) });
});

afterAll(async () => {
  await t?.close();
  await up?.close();
  await authUp?.close();
});

beforeEach(() => {
  up.clear();
  up.respond(null as never);
  authUp.clear();
});

function get(url: string, headers: Record<string, string> = {}) {
  return t.gw.app.inject({ method: 'GET', url, headers });
}

describe('policy', () => {
  it('answers 401 JSON without a cookie on a required route and forwards nothing', async () => {
    const res = await get('/api/orders/1');
    expect(res.statusCode).toBe(401);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    expect(res.json()).toEqual({ error: 'unauthenticated', message: expect.any(String) });
    expect(up.received).toHaveLength(0);
  });

  it('answers 403 without the role, 200 with it, and honours per-method rules', async () => {
    const alice = await t.login('alice', ['user']);
    const bob = await t.login('bob', ['user', 'admin']);
    expect((await get('/admin', { cookie: `sid=${alice}` })).json().error).toBe('forbidden');
    expect((await get('/admin', { cookie: `sid=${bob}` })).statusCode).toBe(200);
    const del = (token: string) => t.gw.app.inject({ method: 'DELETE', url: '/api/orders/1', headers: { cookie: `sid=${token}`, 'sec-fetch-site': 'same-origin' } });
    expect((await del(alice)).statusCode).toBe(403);
    expect((await del(bob)).statusCode).toBe(200);
    expect(up.last().method).toBe('DELETE');
    expect((await get('/api/orders/1', { cookie: `sid=${alice}` })).statusCode).toBe(200);
  });

  it('requires every role of an all-of rule', async () => {
    const analyst = await t.login('ann', ['analyst']);
    const both = await t.login('dave', ['analyst', 'billing']);
    expect((await get('/reports/q1', { cookie: `sid=${analyst}` })).statusCode).toBe(403);
    expect((await get('/reports/q1', { cookie: `sid=${both}` })).statusCode).toBe(200);
  });

  it('gives HEAD the rule of GET and refuses TRACE with 405', async () => {
    const alice = await t.login('alice', ['user']);
    expect((await t.gw.app.inject({ method: 'HEAD', url: '/admin', headers: { cookie: `sid=${alice}` } })).statusCode).toBe(403);
    expect((await t.gw.app.inject({ method: 'HEAD', url: '/api/orders/1', headers: { cookie: `sid=${alice}` } })).statusCode).toBe(200);
    const trace = await t.gw.app.inject({ method: 'TRACE' as 'GET', url: '/public/x' });
    expect(trace.statusCode).toBe(405);
    expect(trace.json().error).toBe('method_not_allowed');
  });

  it('answers 404 JSON when no route matches, never matching across a segment boundary', async () => {
    const res = await get('/publicity');
    expect(res.statusCode).toBe(404);
    expect(res.json().error).toBe('not_found');
    expect((await get('/public')).statusCode).toBe(200);
  });

  it('treats unknown, malformed and duplicated cookies as no session', async () => {
    const alice = await t.login('alice', ['user']);
    for (const cookie of ['sid=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'sid=short', `sid=${alice}; sid=${alice}`]) {
      expect((await get('/api/orders/1', { cookie })).statusCode).toBe(401);
      up.clear();
      const opt = await get('/opt/x', { cookie });
      expect(opt.statusCode).toBe(200);
      expect(headerValues(up.last(), 'x-session')).toEqual([]);
    }
  });
});

describe('X-Session', () => {
  it('verifies with a stock JWT library (HS256) with the claims the README lists', async () => {
    const token = await t.login('alice', ['user'], { claims: { name: 'Alice' } });
    const res = await get('/api/orders/7?x=1', { cookie: `sid=${token}` });
    expect(res.statusCode).toBe(200);
    const [jwt] = headerValues(up.last(), 'x-session');
    const set = JSON.parse(t.keysJson) as { keys: { k: string; kid: string }[] };
    const secret = Buffer.from(set.keys[0]!.k, 'base64url');
    const { payload, protectedHeader } = await jwtVerify(jwt!, secret, { issuer: 'sessiongate', audience: 'orders', algorithms: ['HS256'] });
    expect(protectedHeader).toMatchObject({ alg: 'HS256', kid: set.keys[0]!.kid });
    expect(payload).toMatchObject({ sub: 'alice', roles: ['user'], name: 'Alice', iss: 'sessiongate', aud: 'orders' });
    expect(payload.exp! - payload.iat!).toBe(60);
    expect(typeof payload.sid).toBe('string');
    expect(JSON.stringify(payload)).not.toContain(token);
    // the sid is a one-way hash of the whole token: no part of the token travels
    expect(JSON.stringify(payload)).not.toContain(token.slice(0, 43));
  });

  it('verifies with EdDSA through the published JWKS', async () => {
    const ed = await startTestGateway({ redisUrl: inject('redisUrl'), routes: routesYaml({ public: up.url }), alg: 'EdDSA' });
    try {
      const token = await ed.login('bob', ['user', 'admin']);
      expect((await ed.gw.app.inject({ url: '/admin/x', headers: { cookie: `sid=${token}` } })).statusCode).toBe(200);
      const jwks = await ed.gw.app.inject({ url: '/.well-known/jwks.json' });
      expect(jwks.statusCode).toBe(200);
      expect(JSON.stringify(jwks.json())).not.toMatch(/"d"/);
      const [jwt] = headerValues(up.last(), 'x-session');
      const { payload, protectedHeader } = await jwtVerify(jwt!, createLocalJWKSet(jwks.json()), { issuer: 'sessiongate', audience: 'admin' });
      expect(protectedHeader.alg).toBe('EdDSA');
      expect(payload).toMatchObject({ sub: 'bob', roles: ['user', 'admin'] });
    } finally {
      await ed.close();
    }
  });

  it('is sent on optional routes only with a valid session and never on auth: none', async () => {
    const alice = await t.login('alice', ['user']);
    await get('/opt/a');
    expect(headerValues(up.last(), 'x-session')).toEqual([]);
    await get('/opt/a', { cookie: `sid=${alice}` });
    expect(headerValues(up.last(), 'x-session')).toHaveLength(1);
    await get('/public/a', { cookie: `sid=${alice}` });
    expect(headerValues(up.last(), 'x-session')).toEqual([]);
  });
});

describe('upstream hygiene', () => {
  it('removes every client spelling of X-Session on every route, even listed in Connection', async () => {
    const alice = await t.login('alice', ['user']);
    const forged = { 'x-session': 'forged', 'X_Session': 'forged2', 'x.session': 'forged3', connection: 'x-session' };
    await get('/public/h', forged);
    expect(up.last().rawHeaders.filter(([, v]) => v.startsWith('forged'))).toEqual([]);
    await get('/api/orders/h', { ...forged, cookie: `sid=${alice}` });
    const ids = up.last().rawHeaders.filter(([k]) => k.toLowerCase().replace(/[_.]/g, '-') === 'x-session');
    expect(ids).toHaveLength(1);
    expect(ids[0]![1]).not.toMatch(/^forged/);
  });

  it('strips the session cookie, keeps the others, and never leaks the token', async () => {
    const alice = await t.login('alice', ['user']);
    for (const path of ['/api/orders/c', '/opt/c', '/public/c']) {
      up.clear();
      expect((await get(path, { cookie: `theme=dark; sid=${alice}; lang=en` })).statusCode).toBe(200);
      const rec = up.last();
      expect(headerValues(rec, 'cookie')).toEqual(['theme=dark; lang=en']);
      expect(rec.rawHeaders.some(([, v]) => v.includes(alice))).toBe(false);
    }
    await get('/public/c', { cookie: `sid=${alice}` });
    expect(headerValues(up.last(), 'cookie')).toEqual([]);
  });

  it('lets only the auth route set the session cookie', async () => {
    up.respond((_req, res) => {
      res.setHeader('set-cookie', ['sid=evil; Path=/', 'theme=dark']);
      res.end('ok');
    });
    const res = await get('/public/set');
    expect([res.headers['set-cookie']].flat()).toEqual(['theme=dark']);
    authUp.respond((_req, res) => {
      res.setHeader('set-cookie', 'sid=fresh; Path=/; HttpOnly');
      res.end('ok');
    });
    const login = await get('/auth/login');
    expect(login.headers['set-cookie']).toBe('sid=fresh; Path=/; HttpOnly');
  });

  it('keeps the upstream connection\'s hop-by-hop headers, and those its Connection lists, from the client', async () => {
    up.respond((_req, res) => {
      res.setHeader('connection', 'keep-alive, X-Upstream-Hop');
      res.setHeader('keep-alive', 'timeout=7, max=3');
      res.setHeader('x-upstream-hop', 'internal');
      res.setHeader('proxy-connection', 'keep-alive');
      res.setHeader('x-kept', 'yes');
      res.end('ok');
    });
    const port = await t.listen();
    const res = await rawRequest(port, { target: '/public/hop' });
    expect(res.status).toBe(200);
    expect(res.headers['x-kept']).toEqual(['yes']);
    expect(res.headers['x-upstream-hop']).toBeUndefined();
    expect(res.headers['proxy-connection']).toBeUndefined();
    // the gateway's own server may announce a keep-alive of its own, never the upstream's
    expect(Object.values(res.headers).flat().filter((v) => /timeout=7|X-Upstream-Hop/i.test(v))).toEqual([]);
  });

  it('drops every Set-Cookie a browser would send back as the session cookie, from any route but auth', async () => {
    // RFC 6265bis: no "=" makes a nameless cookie whose value is the whole pair, and a
    // nameless cookie goes back as its bare value: each of these returns as "sid…"
    const planted = ['=sid=PLANTED', ' sid=X', 'sid =X', '\tsid=X', 'SID=X', 'Sid=X; Path=/', 'sid', 'sid; Path=/', '=sid', '= sid=X', '=  sid =X; Path=/; HttpOnly', 'sid=; Max-Age=0', '=SID=X'];
    const harmless = ['theme=dark', 'sidebar=open; Path=/', 'xsid=1', '=theme=1', 'lang', 's=sid=1'];
    up.respond((_req, res) => {
      res.setHeader('set-cookie', [...planted, ...harmless]);
      res.end('ok');
    });
    const port = await t.listen();
    const res = await rawRequest(port, { target: '/public/set' });
    expect(res.status).toBe(200);
    expect(res.headers['set-cookie']).toEqual(harmless);
    // the same from a route with a session
    const alice = await t.login('alice', ['user']);
    const viaOrders = await rawRequest(port, { target: '/api/orders/1', headers: [['Cookie', `sid=${alice}`]] });
    expect(viaOrders.status).toBe(200);
    expect(viaOrders.headers['set-cookie']).toEqual(harmless);
  });

  it('sets X-Forwarded-* of its own and ignores the client\'s (no trusted proxies)', async () => {
    await get('/public/f', { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-host': 'evil.example', forwarded: 'for=6.6.6.6' });
    const rec = up.last();
    expect(headerValues(rec, 'x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(headerValues(rec, 'forwarded')).toEqual([]);
    expect(headerValues(rec, 'x-forwarded-host')).toEqual(['localhost:80']);
  });
});

// inject() normalizes URLs like a client library would: these go over a real socket, raw
describe('canonical path', () => {
  it('decides on and forwards the same canonical path, with the query unchanged', async () => {
    const port = await t.listen();
    const alice = await t.login('alice', ['user']);
    expect((await rawRequest(port, { target: '/public/./a//b/../c%41?q=%2F..&x' })).status).toBe(200);
    expect(up.last().url).toBe('/public/a/cA?q=%2F..&x');
    expect((await rawRequest(port, { target: '/api/orders//7', headers: [['Cookie', `sid=${alice}`]] })).status).toBe(200);
    expect(up.last().url).toBe('/orders/7');
    const climb = await rawRequest(port, { target: '/public/../admin' });
    expect(climb.status).toBe(401);
    expect(climb.json().error).toBe('unauthenticated');
  });

  it.each([
    '/public/%2e%2e/admin',
    '/public/.%2e/admin',
    '/public/a%2Fb',
    '/public/a%5Cb',
    '/public/%25',
    '/public/a;b',
    '/public/a%3Bb',
    '/public/%00',
    '/public/a\\b',
    '/public/../../x',
    'http://127.0.0.1/public/x',
    '*',
  ])('answers 400 bad_request for %s', async (target) => {
    const port = await t.listen();
    const res = await rawRequest(port, { target });
    expect(res.status).toBe(400);
    expect(res.json().error).toBe('bad_request');
    expect(up.received).toHaveLength(0);
  });
});

describe('error bodies', () => {
  it('are JSON for API clients and a small HTML page for browsers navigating', async () => {
    const api = await get('/api/orders/1', { accept: 'application/json, text/html' });
    expect(api.headers['content-type']).toMatch(/^application\/json/);
    expect(api.json().error).toBe('unauthenticated');
    const any = await get('/api/orders/1', { accept: '*/*' });
    expect(any.headers['content-type']).toMatch(/^application\/json/);
    const page = await get('/api/orders/1', { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' });
    expect(page.statusCode).toBe(401);
    expect(page.headers['content-type']).toMatch(/^text\/html/);
    expect(page.body).toContain('unauthenticated');
    expect(page.body).toContain('href="/auth/login?next=%2Fapi%2Forders%2F1"');
  });
});
