import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAuth, writeUsersFile, type TestAuth } from './support/auth-service.js';
import { caddyUnavailable, startCaddy } from './support/caddy.js';
import type { EdgeProxy } from './support/edge-proxy.js';
import { startTestGateway, type TestGateway } from './support/gateway.js';
import { nginxUnavailable, startNginx } from './support/nginx.js';
import { rawRequest, type RawResponse } from './support/raw-http.js';
import { startRedisServer, type RedisServer } from './support/redis-server.js';
import { startUpstream, type Upstream } from './support/upstream.js';

// Forward auth end to end: real nginx and real Caddy running the shipped
// deploy/forward-auth configs (only their addresses filled in) in front of an app, asking a
// real gateway that shares a real Redis with a real auth service. What the app receives is
// what matters: a verified X-Session, never the session cookie, nothing for a refused request.

const USERS = {
  ana: { password: 'ana-password-1', roles: ['user'] },
  root: { password: 'root-password-1', roles: ['user', 'admin'] },
};

// the site's routes: the sign-in pages go through the gateway, the rest only asks it
const ROUTES = (auth: string) => `version: 1
routes:
  - name: auth
    prefix: /auth
    upstream: ${auth}
    auth: optional
  - name: public
    prefix: /public
    auth: none
  - name: admin
    prefix: /admin
    roles: [admin]
  - name: machine
    prefix: /machine
    roles: [user]
    credentials: [api_key]
  - name: site
    prefix: /
    roles: [user]
  - name: other-site
    host: other.example.com
    prefix: /
    auth: none
`;

/** A request from 127.0.0.2: on this machine, an address that is not a listed proxy. */
function fromOutsider(port: number, target: string, headers: Record<string, string>): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: target, headers, localAddress: '127.0.0.2', agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A request straight to an endpoint from 127.0.0.1 (the listed proxy address). */
function asProxy(port: number, target: string, headers: Record<string, string>) {
  return new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: target, headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

let redis: RedisServer;
let auth: TestAuth;
let app: Upstream;
let tg: TestGateway;
let gwPort: number;
let jwks: Uint8Array;

beforeAll(async () => {
  redis = await startRedisServer();
  app = await startUpstream('app');
  const usersFile = await writeUsersFile(USERS);
  auth = await startTestAuth({ redisUrl: redis.url, usersFile, env: { LOGIN_MAX_FAILURES_PER_ACCOUNT: '1000' } });
  await auth.svc.app.listen({ port: 0, host: '127.0.0.1' });
  const authUrl = `http://127.0.0.1:${(auth.svc.app.server.address() as AddressInfo).port}`;
  tg = await startTestGateway({
    redisUrl: redis.url,
    routes: ROUTES(authUrl),
    keyPrefix: auth.keyPrefix,
    keysJson: auth.keysJson,
    // nginx and Caddy call from 127.0.0.1; the test's outsider calls from 127.0.0.2
    env: { SESSIONGATE_FORWARD_AUTH_PROXIES: '127.0.0.1/32', SESSIONGATE_TRUSTED_PROXIES: '127.0.0.1/32' },
  });
  gwPort = await tg.listen();
  // the HS256 key the gateway signs with
  jwks = Buffer.from((JSON.parse(auth.keysJson) as { keys: { k: string }[] }).keys[0]!.k, 'base64url');
}, 60_000);

afterAll(async () => {
  await tg?.close().catch(() => undefined);
  await auth?.close().catch(() => undefined);
  await app?.close();
  await redis?.stop();
});

const PROXIES = [
  { name: 'nginx', unavailable: nginxUnavailable(), start: startNginx },
  { name: 'Caddy', unavailable: caddyUnavailable(), start: startCaddy },
] as const;

for (const p of PROXIES) {
  if (p.unavailable) console.warn(`test/forward-auth.test.ts: ${p.name} skipped: ${p.unavailable}`);

  describe.skipIf(Boolean(p.unavailable))(`${p.name} with the shipped config, asking sessiongate`, () => {
    let proxy: EdgeProxy;

    beforeAll(async () => {
      proxy = await p.start({ sessiongate: `127.0.0.1:${gwPort}`, app: `127.0.0.1:${app.port}` });
    }, 30_000);
    afterAll(async () => {
      await proxy?.stop();
    });

    const send = (target: string, headers: [string, string][] = [], method = 'GET', body?: string): Promise<RawResponse> =>
      rawRequest(proxy.port, { target, method, headers, ...(body === undefined ? {} : { body }) });

    /** Signs in through the proxy, as a browser would, and returns the session cookie's token. */
    async function signIn(user: keyof typeof USERS): Promise<string> {
      const res = await send(
        '/auth/login',
        [['Content-Type', 'application/json'], ['Sec-Fetch-Site', 'same-origin']],
        'POST',
        JSON.stringify({ username: user, password: USERS[user].password }),
      );
      expect(res.status, res.body).toBe(204);
      const cookie = (res.headers['set-cookie'] ?? []).find((c) => c.startsWith('sid='));
      expect(cookie).toBeDefined();
      return cookie!.slice(4).split(';')[0]!;
    }

    it('a signed-in request reaches the app with a verified X-Session and without the session cookie', async () => {
      const token = await signIn('ana');
      app.clear();
      const res = await send('/orders/7?x=1', [['Cookie', `theme=dark; sid=${token}; lang=en`], ['X-Session', 'forged']]);
      expect(res.status, res.body).toBe(200);
      expect(app.received).toHaveLength(1);
      const got = app.last();
      expect(got.url).toBe('/orders/7?x=1');
      const { payload } = await jwtVerify(String(got.headers['x-session']), jwks, { issuer: 'sessiongate', audience: 'site', algorithms: ['HS256'] });
      expect([payload.sub, payload.roles]).toEqual(['ana', ['user']]);
      expect(got.headers.cookie).toBe('theme=dark; lang=en');
      expect(JSON.stringify(got.rawHeaders)).not.toContain(token);
      expect(JSON.stringify(got.rawHeaders)).not.toContain('forged');
    });

    it('an API key passes and never reaches the app; an unrelated Authorization reaches it unchanged', async () => {
      const token = await signIn('ana');
      const minted = await send('/auth/keys', [['Cookie', `sid=${token}`], ['Sec-Fetch-Site', 'same-origin'], ['Content-Type', 'application/json']], 'POST', JSON.stringify({ name: `behind ${p.name}`, roles: ['user'] }));
      expect(minted.status, minted.body).toBe(201);
      const key = String(minted.json().key);
      expect(key).toMatch(/^sgk_/);
      const secret = key.split('_').pop()!;
      app.clear();
      const res = await send('/machine/jobs', [['Authorization', `Bearer ${key}`], ['Accept', 'application/json']]);
      expect(res.status, res.body).toBe(200);
      expect(app.received).toHaveLength(1);
      const got = app.last();
      const { payload } = await jwtVerify(String(got.headers['x-session']), jwks, { audience: 'machine', algorithms: ['HS256'] });
      expect(payload.sub).toBe('ana');
      expect(got.headers.authorization).toBeUndefined();
      expect(JSON.stringify(got.rawHeaders)).not.toContain('sgk_');
      expect(JSON.stringify(got.rawHeaders)).not.toContain(secret);
      // a key on a route that takes none is not judged, and still never passes
      app.clear();
      expect((await send('/public/x', [['Authorization', `Bearer ${key}`]])).status).toBe(200);
      expect(JSON.stringify(app.last().rawHeaders)).not.toContain('sgk_');
      // a cookie-only route: the client's own Basic credentials are the app's business
      const basic = `Basic ${Buffer.from('app-user:app-pass').toString('base64')}`;
      app.clear();
      expect((await send('/orders/1', [['Cookie', `sid=${token}`], ['Authorization', basic]])).status).toBe(200);
      expect(app.last().headers.authorization).toBe(basic);
      expect((await send('/public/y', [['Authorization', basic]])).status).toBe(200);
      expect(app.last().headers.authorization).toBe(basic);
      // a client's own X-Sessiongate-Authorization chooses nothing
      expect((await send('/public/z', [['X-Sessiongate-Authorization', 'Bearer forged']])).status).toBe(200);
      expect(JSON.stringify(app.last().rawHeaders)).not.toContain('forged');
    });

    it("a client's own X-Session is dropped where no session is needed", async () => {
      app.clear();
      const res = await send('/public/x', [['X-Session', 'forged.x-session.value'], ['Cookie', 'theme=dark']]);
      expect(res.status).toBe(200);
      expect(app.last().headers['x-session']).toBeUndefined();
      expect(app.last().headers.cookie).toBe('theme=dark');
    });

    it('no session: 401 JSON for API clients, the sign-in page for browsers; the app sees nothing', async () => {
      app.clear();
      const api = await send('/page?a=1', [['Accept', 'application/json']]);
      expect(api.status).toBe(401);
      expect(api.json().error).toBe('unauthenticated');
      const browser = await send('/page?a=1', [['Accept', 'text/html,application/xhtml+xml']]);
      expect(browser.status).toBe(302);
      const location = browser.headers.location![0]!.replace(/^http:\/\/[^/]+/, '');
      // nginx cannot URL-encode `next`; the endpoint (Caddy's case) does
      expect(location).toBe(p.name === 'nginx' ? '/auth/login?next=/page?a=1' : '/auth/login?next=%2Fpage%3Fa%3D1');
      expect(app.received).toHaveLength(0);
    });

    it('a role the session lacks: 403, the app sees nothing', async () => {
      const token = await signIn('ana');
      app.clear();
      const res = await send('/admin/users', [['Cookie', `sid=${token}`]]);
      expect(res.status).toBe(403);
      expect(app.received).toHaveLength(0);
      const root = await signIn('root');
      expect((await send('/admin/users', [['Cookie', `sid=${root}`]])).status).toBe(200);
      expect(app.last().url).toBe('/admin/users');
    });

    it('path tricks around /admin never pass, whatever the proxy forwards', async () => {
      const token = await signIn('ana');
      app.clear();
      // the last three canonicalize to pages ana may see, while an app that does not
      // normalize (or a prefix router) reads them under /admin
      const tricks = ['/public/../admin', '/public/%2e%2e/admin', '/public/%2E%2E/admin', '/public/..%2fadmin', '/public%2f..%2fadmin', '/admin%2fx', '//admin', '/public/./../admin', '/auth/../admin', '/%61dmin', '/admin/..', '/admin/../public/x', '/admin/%2e%2e/page'];
      const seen: Record<string, number> = {};
      for (const t of tricks) seen[t] = (await send(t, [['Cookie', `sid=${token}`]])).status;
      // the endpoint refuses every non-canonical URI with 403; nginx refuses a few itself
      for (const t of tricks) expect([403, 400], `${t}: ${seen[t]}`).toContain(seen[t]);
      expect(app.received.map((r) => r.url)).toEqual([]);
    });

    it('forged forward-auth fields from the client gain nothing', async () => {
      const token = await signIn('ana');
      app.clear();
      const forged: [string, string][][] = [
        [['X-Forwarded-Uri', '/public/x'], ['X-Forwarded-Method', 'GET'], ['X-Forwarded-Host', '127.0.0.1']],
        [['X-Original-URI', '/public/x'], ['X-Original-Method', 'GET']],
        [['X-Original-URL', 'http://other.example.com/admin/users'], ['X-Original-Method', 'GET']],
        [['X-Forwarded-Host', 'other.example.com']],
      ];
      for (const extra of forged) {
        const res = await send('/admin/users', [['Cookie', `sid=${token}`], ...extra]);
        expect(res.status, JSON.stringify(extra)).toBe(403);
      }
      expect(app.received).toHaveLength(0);
    });

    it("a Host naming another site is never judged by that site's routes", async () => {
      app.clear();
      // other.example.com's routes let anyone through; this site's need a session
      const res = await send('/page', [['Host', 'other.example.com'], ['Accept', 'application/json']]);
      // nginx asks about this site (a 401 without a session); Caddy has no site for that name
      // and answers by itself
      if (p.name === 'nginx') expect(res.status).toBe(401);
      expect(app.received).toHaveLength(0);
    });

    it('the endpoint cannot be reached through the site', async () => {
      const res = await send('/_sessiongate/authz', [['X-Original-URI', '/public'], ['X-Original-Method', 'GET']]);
      expect(res.status).toBe(404);
      expect(res.headers['x-session']).toBeUndefined();
    });

    it('a sign-out is honoured within a second', async () => {
      const token = await signIn('ana');
      const cookie: [string, string] = ['Cookie', `sid=${token}`];
      expect((await send('/page', [cookie])).status).toBe(200);
      const out = await send('/auth/logout', [cookie, ['Sec-Fetch-Site', 'same-origin']], 'POST', '');
      expect(out.status, out.body).toBeLessThan(300);
      const deadline = Date.now() + 1000;
      let status = 200;
      while (Date.now() < deadline && status === 200) status = (await send('/page', [cookie, ['Accept', 'application/json']])).status;
      expect(status).toBe(401);
    });
  });
}

describe('the endpoint itself', () => {
  const ask = (headers: Record<string, string>, target = '/_sessiongate/authz') => asProxy(gwPort, target, headers);

  it('answers only listed proxies: anyone else gets a 404 as if it did not exist', async () => {
    const token = await tg.login('ana', ['user']);
    const h = { 'x-original-uri': '/page', 'x-original-method': 'GET', cookie: `sid=${token}`, host: 'site.example' };
    const outsider = await fromOutsider(gwPort, '/_sessiongate/authz', h);
    expect([outsider.status, outsider.headers['x-session'], JSON.parse(outsider.body).error]).toEqual([404, undefined, 'not_found']);
    const proxied = await ask(h);
    expect(proxied.status).toBe(200);
    expect(proxied.headers['x-session']).toBeDefined();
    expect(proxied.headers['cache-control']).toBe('no-store');
    expect(proxied.headers['x-sessiongate-cookie']).toBe('');
    expect(proxied.headers['x-sessiongate-authorization']).toBe('');
    // an unrelated Authorization is handed back for the app; a judged key is not
    const basic = await ask({ ...h, authorization: 'Basic YTpi' });
    expect([basic.status, basic.headers['x-sessiongate-authorization']]).toEqual([200, 'Basic YTpi']);
  });

  it('every proxy dialect gets the same decision; mixing two is refused', async () => {
    const token = await tg.login('ana', ['user']);
    const cookie = `sid=${token}; theme=dark`;
    const nginx = await ask({ 'x-original-uri': '/page', 'x-original-method': 'GET', cookie });
    const caddy = await ask({ 'x-forwarded-uri': '/page', 'x-forwarded-method': 'GET', 'x-forwarded-host': 'site.example', cookie });
    const ingress = await ask({ 'x-original-url': 'https://site.example/page', 'x-original-method': 'GET', cookie });
    const envoy = await ask({ cookie }, '/_sessiongate/authz/page');
    for (const r of [nginx, caddy, ingress, envoy]) {
      expect([r.status, r.headers['x-sessiongate-cookie'], r.headers['cache-control']]).toEqual([200, 'theme=dark', 'no-store']);
      const { payload } = await jwtVerify(String(r.headers['x-session']), jwks, { audience: 'site', algorithms: ['HS256'] });
      expect(payload.sub).toBe('ana');
    }
    const mixed = await ask({ 'x-original-uri': '/page', 'x-original-method': 'GET', 'x-forwarded-uri': '/public', cookie });
    expect(mixed.status).toBe(403);
    // the endpoint's own query string is not part of the question
    expect((await ask({ 'x-original-uri': '/page', 'x-original-method': 'GET', cookie }, '/_sessiongate/authz?x=/public')).status).toBe(200);
    // a target that only canonicalizes to the endpoint's path is not the endpoint
    expect((await ask({ 'x-original-uri': '/public', 'x-original-method': 'GET' }, '/_sessiongate//authz')).headers['x-sessiongate-cookie']).toBeUndefined();
  });

  it('host: routes apply to the reported host, compared without the port', async () => {
    const other = await ask({ 'x-original-uri': '/anything', 'x-original-method': 'GET', host: 'other.example.com:8443' });
    expect(other.status).toBe(200);
    const site = await ask({ 'x-original-uri': '/anything', 'x-original-method': 'GET', host: 'site.example' });
    expect(site.status).toBe(401);
  });

  it('a route without upstream answers 404 on the gateway listener itself', async () => {
    const token = await tg.login('root', ['user', 'admin']);
    const res = await rawRequest(gwPort, { target: '/admin/users', headers: [['Cookie', `sid=${token}`]] });
    expect([res.status, res.json().error]).toEqual([404, 'not_found']);
  });

  it('counts its answers apart from proxied requests', async () => {
    const text = await (await tg.gw.ops.inject({ method: 'GET', url: '/metrics' })).body;
    expect(text).toMatch(/sessiongate_forward_auth_decisions_total\{route="site",decision="allow"\} [1-9]/);
    expect(text).toMatch(/sessiongate_forward_auth_decisions_total\{route="admin",decision="forbidden"\} [1-9]/);
    expect(text).not.toMatch(/sessiongate_requests_total\{route="site"/);
  });

  // last: the test's own Redis is stopped
  it('Redis not answering: 503 from the endpoint, 500 from nginx, 503 from Caddy; nothing passes', async () => {
    const token = await tg.login('ana', ['user']);
    const proxies: { name: string; proxy: EdgeProxy }[] = [];
    if (!nginxUnavailable()) proxies.push({ name: 'nginx', proxy: await startNginx({ sessiongate: `127.0.0.1:${gwPort}`, app: `127.0.0.1:${app.port}` }) });
    if (!caddyUnavailable()) proxies.push({ name: 'Caddy', proxy: await startCaddy({ sessiongate: `127.0.0.1:${gwPort}`, app: `127.0.0.1:${app.port}` }) });
    redis.pause();
    try {
      app.clear();
      const direct = await ask({ 'x-original-uri': '/page', 'x-original-method': 'GET', cookie: `sid=${token}` });
      expect([direct.status, JSON.parse(direct.body).error, direct.headers['cache-control']]).toEqual([503, 'session_store_unavailable', 'no-store']);
      for (const { name, proxy } of proxies) {
        const res = await rawRequest(proxy.port, { target: '/page', headers: [['Cookie', `sid=${token}`]] });
        expect(res.status, name).toBe(name === 'nginx' ? 500 : 503);
      }
      expect(app.received).toHaveLength(0);
    } finally {
      redis.resume();
      for (const { proxy } of proxies) await proxy.stop();
    }
  }, 30_000);
});
