import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SignJWT, base64url } from 'jose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { waitUntilReady } from '@sessiongate/session';
import { startTestGateway, type TestGateway } from './support/gateway.js';
import { ROOT } from './support/process.js';
import { freePort } from './support/redis-server.js';
import { startUpstream, headerValues, type Upstream } from './support/upstream.js';
// the embedding example, as its users import it
// @ts-expect-error: plain JavaScript without type declarations
import { buildApp } from '../examples/embed-fastify/app.mjs';

// The example upstreams as their teams run them (real processes), behind a real gateway:
// they accept what the gateway mints and refuse what it did not (forged, expired, meant
// for another route, wrong issuer, wrong algorithm).

const NODE_EXAMPLE = path.join(ROOT, 'examples/node-upstream/server.mjs');
const PY_EXAMPLE = path.join(ROOT, 'examples/python-upstream/server.py');
const hasPython = !spawnSync('python3', ['--version']).error;

interface Example {
  child: ChildProcess;
  port: number;
  url: string;
  output(): string;
}
const examples: Example[] = [];
const dir = mkdtempSync(path.join(tmpdir(), 'sessiongate-examples-'));

async function startExample(command: string, args: string[], env: Record<string, string>, port?: number): Promise<Example> {
  const p = port ?? (await freePort());
  const child = spawn(command, args, { env: { PATH: process.env.PATH, HOME: process.env.HOME, HOST: '127.0.0.1', PORT: String(p), ...env }, stdio: 'pipe' });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const ex: Example = { child, port: p, url: `http://127.0.0.1:${p}`, output: () => out };
  examples.push(ex);
  const deadline = Date.now() + 10_000;
  while (!/listening on/.test(out)) {
    if (child.exitCode !== null) throw new Error(`${args[0]} exited (${child.exitCode}):\n${out}`);
    if (Date.now() > deadline) throw new Error(`${args[0]} did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return ex;
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(url, { headers });
  const text = await res.text();
  try {
    return { status: res.status, body: JSON.parse(text) };
  } catch {
    return { status: res.status, body: text };
  }
}

const now = () => Math.floor(Date.now() / 1000);

interface Claims {
  iss?: string;
  aud?: string;
  sub?: string;
  roles?: string[];
  iat?: number;
  exp?: number;
  nbf?: number;
}

/** An X-Session signed with jose: the gateway's claims unless overridden. */
async function hs256(secret: Uint8Array, kid: string, c: Claims = {}): Promise<string> {
  const iat = c.iat ?? now();
  const jwt = new SignJWT({ roles: c.roles ?? ['user'], sid: 'test-sid', ...(c.nbf !== undefined ? { nbf: c.nbf } : {}) })
    .setProtectedHeader({ alg: 'HS256', kid, typ: 'JWT' })
    .setIssuer(c.iss ?? 'sessiongate')
    .setAudience(c.aud ?? 'orders')
    .setSubject(c.sub ?? 'mallory')
    .setIssuedAt(iat)
    .setExpirationTime(c.exp ?? iat + 60);
  return jwt.sign(secret);
}

function unsigned(c: Claims): string {
  const enc = (o: object) => base64url.encode(JSON.stringify(o));
  return `${enc({ alg: 'none', typ: 'JWT' })}.${enc({ iss: 'sessiongate', aud: 'orders', sub: 'mallory', roles: ['admin'], iat: now(), exp: now() + 60, ...c })}.`;
}

/** The same token with its payload changed and the signature kept. */
function tampered(token: string, change: Record<string, unknown>): string {
  const [h, p, s] = token.split('.');
  const payload = JSON.parse(Buffer.from(p!, 'base64url').toString()) as Record<string, unknown>;
  return `${h}.${base64url.encode(JSON.stringify({ ...payload, ...change }))}.${s}`;
}

/** The example's routes; `appData`: the app route declares the session data namespace the page writes. */
/** The tenant the example's /app page shows, and its error message if any. */
function tenantPage(html: string): { tenant: string | undefined; error: string | undefined } {
  return { tenant: /<strong id="tenant">([^<]*)<\/strong>/.exec(html)?.[1], error: /<p role="alert" id="error">([^<]*)<\/p>/.exec(html)?.[1] };
}

/** The example's tenant form, posted through the gateway as a browser does (same origin). */
async function chooseTenant(base: string, cookie: string, tenant: string): Promise<{ status: number; location: string | null; html: string }> {
  const res = await fetch(`${base}/app/tenant`, {
    method: 'POST',
    headers: { cookie, origin: base, 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ tenant }).toString(),
    redirect: 'manual',
  });
  return { status: res.status, location: res.headers.get('location'), html: await res.text() };
}

function routes(up: { node: string; python: string; echo: string }, appData = true): string {
  return `version: 1
routes:
  - name: app
    prefix: /app
    upstream: ${up.node}
    roles: [user]
${appData ? '    sessionData: { namespace: app }\n' : ''}  - name: orders
    prefix: /api/orders
    upstream: ${up.node}
    rewritePrefix: /orders
    roles: [user]
  - name: reports
    prefix: /api/reports
    upstream: ${up.python}
    roles: { all: [analyst, billing] }
  - name: public
    prefix: /public
    upstream: ${up.node}
    auth: none
  - name: admin
    prefix: /admin
    upstream: ${up.node}
    roles: [admin]
  - name: echo
    prefix: /echo
    upstream: ${up.echo}
    roles: [user]
`;
}

afterAll(async () => {
  for (const ex of examples) ex.child.kill('SIGTERM');
  await Promise.all(examples.map((ex) => (ex.child.exitCode !== null ? undefined : new Promise((r) => ex.child.once('exit', r)))));
  rmSync(dir, { recursive: true, force: true });
});

describe('HS256: a shared secret', () => {
  let gw: TestGateway;
  let node: Example;
  let py: Example | undefined;
  let echo: Upstream;
  let base: string;
  let secret: Uint8Array;
  let kid: string;
  let keysFile: string;
  let dataUrl: string;
  const cookie: Record<string, string> = {};

  beforeAll(async () => {
    echo = await startUpstream('echo');
    const nodePort = await freePort();
    const pyPort = await freePort();
    const dataPort = await freePort();
    gw = await startTestGateway({
      redisUrl: inject('redisUrl'),
      alg: 'HS256',
      routes: routes({ node: `http://127.0.0.1:${nodePort}`, python: `http://127.0.0.1:${pyPort}`, echo: echo.url }),
      env: { SESSION_DATA_PORT: String(dataPort) },
    });
    await gw.gw.sessionData!.listen({ port: dataPort, host: '127.0.0.1' });
    dataUrl = `http://127.0.0.1:${dataPort}/_sessiongate/session-data`;
    const jwk = (JSON.parse(gw.keysJson) as { keys: { k: string; kid: string }[] }).keys[0]!;
    secret = new Uint8Array(Buffer.from(jwk.k, 'base64url'));
    kid = jwk.kid;
    keysFile = path.join(dir, 'hs256-keys.json');
    writeFileSync(keysFile, gw.keysJson, { mode: 0o600 });
    [node, py] = await Promise.all([
      startExample(process.execPath, [NODE_EXAMPLE], { X_SESSION_KEYS_FILE: keysFile, SESSIONGATE_DATA_URL: dataUrl }, nodePort),
      hasPython ? startExample('python3', ['-u', PY_EXAMPLE], { X_SESSION_KEYS_FILE: keysFile }, pyPort) : undefined,
    ]);
    base = `http://127.0.0.1:${await gw.listen()}`;
    cookie.alice = `sid=${await gw.login('alice', ['user'])}`;
    cookie.bob = `sid=${await gw.login('bob', ['user', 'admin'])}`;
    cookie.dave = `sid=${await gw.login('dave', ['analyst', 'billing'])}`;
  });

  afterAll(async () => {
    await gw?.close();
    await echo?.close();
  });

  /** A real X-Session the gateway minted for route `echo`, as the echo upstream received it. */
  async function mintedForEcho(who: string): Promise<string> {
    echo.clear();
    expect((await get(`${base}/echo/x`, { cookie: cookie[who]! })).status).toBe(200);
    const [token] = headerValues(echo.last(), 'x-session');
    expect(token).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    return token!;
  }

  it('node-upstream: accepts the gateway-minted header and uses sub and roles', async () => {
    const r = await get(`${base}/api/orders/42`, { cookie: cookie.alice! });
    expect(r).toEqual({
      status: 200,
      body: {
        service: 'node-upstream',
        route: 'orders',
        method: 'GET',
        path: '/orders/42',
        user: { sub: 'alice', roles: ['user'] },
        order: { id: '42', owner: 'alice', canDelete: false },
      },
    });
    expect((await get(`${base}/admin/panel`, { cookie: cookie.bob! })).body).toMatchObject({ route: 'admin', user: { sub: 'bob', roles: ['user', 'admin'] } });
    // auth: none: no X-Session is sent, and the example answers anonymously
    expect((await get(`${base}/public/x`, { cookie: cookie.alice! })).body).toMatchObject({ route: 'public', user: null });
  });

  it('node-upstream: refuses a missing, forged, expired, tampered or misdirected header', async () => {
    const orders = `${node.url}/orders/1`;
    const refused = async (token: string | undefined, why: RegExp) => {
      const r = await get(orders, token === undefined ? {} : { 'x-session': token });
      expect(r.status, `${why}`).toBe(401);
      expect(r.body.error).toBe('unauthenticated');
      expect(r.body.message).toMatch(why);
    };
    // control: a correctly signed header passes, so each refusal below is for its stated reason
    expect((await get(orders, { 'x-session': await hs256(secret, kid) })).body.user).toEqual({ sub: 'mallory', roles: ['user'] });

    await refused(undefined, /missing/);
    await refused(await mintedForEcho('alice'), /aud/); // the gateway's own header, for another route
    await refused(await hs256(new Uint8Array(32).fill(7), kid), /signature/);
    await refused(await hs256(secret, kid, { iat: now() - 120, exp: now() - 60 }), /exp/);
    await refused(await hs256(secret, kid, { iss: 'someone-else' }), /iss/);
    await refused(await hs256(secret, 'other-kid'), /kid/);
    await refused(tampered(await hs256(secret, kid), { roles: ['admin'] }), /signature/);
    await refused(unsigned({}), /alg/);
    // a little clock skew is tolerated (5 s), more is not
    expect((await get(orders, { 'x-session': await hs256(secret, kid, { iat: now() - 62, exp: now() - 2 }) })).status).toBe(200);
  });

  it('node-upstream /app: a tenant picked through the gateway is kept in the session and shown on the next page', async () => {
    const erin = `sid=${await gw.login('erin', ['user'])}`;
    const page = async (c: string) => {
      const r = await get(`${base}/app`, { cookie: c });
      expect(r.status).toBe(200);
      return tenantPage(r.body as string);
    };
    expect(await page(erin)).toEqual({ tenant: '(none chosen)', error: undefined });

    // the form's POST: the example writes with the X-Session it got, then sends the browser back
    expect(await chooseTenant(base, erin, 'globex')).toMatchObject({ status: 303, location: '/app' });
    expect(await page(erin)).toEqual({ tenant: 'globex', error: undefined });
    // in the session, not in the example: the next requests still carry it
    expect((await get(`${base}/app`, { cookie: erin })).body).toContain('<option selected>globex</option>');
    expect((await gw.store.list('erin'))[0]!.data).toEqual([{ namespace: 'app', bytes: expect.any(Number) }]);
    expect(await chooseTenant(base, erin, 'acme')).toMatchObject({ status: 303, location: '/app' });
    expect((await page(erin)).tenant).toBe('acme');

    // a tenant the page does not offer is refused by the example, and nothing changes
    const unknown = await chooseTenant(base, erin, 'umbrella');
    expect(unknown.status).toBe(400);
    expect(tenantPage(unknown.html)).toEqual({ tenant: 'acme', error: 'Choose one of acme, globex, initech.' });
    expect((await page(erin)).tenant).toBe('acme');

    // the data belongs to the session: the same user signed in elsewhere has none
    expect((await page(`sid=${await gw.login('erin', ['user'])}`)).tenant).toBe('(none chosen)');
    // and the example writes only with a header it verified: none, none written
    const direct = await fetch(`${node.url}/app/tenant`, { method: 'POST', body: 'tenant=initech', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    expect(direct.status).toBe(401);
    expect((await page(erin)).tenant).toBe('acme');
  });

  it('node-upstream /app without SESSIONGATE_DATA_URL: shows the page, and says why the tenant cannot change', async () => {
    const alone = await startExample(process.execPath, [NODE_EXAMPLE], { X_SESSION_KEYS_FILE: keysFile });
    const xSession = await hs256(secret, kid, { aud: 'app', sub: 'erin' });
    expect(tenantPage((await get(`${alone.url}/app`, { 'x-session': xSession })).body as string)).toEqual({ tenant: '(none chosen)', error: undefined });
    const res = await fetch(`${alone.url}/app/tenant`, {
      method: 'POST',
      headers: { 'x-session': xSession, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'tenant=acme',
    });
    expect(res.status).toBe(503);
    expect(tenantPage(await res.text()).error).toBe('The tenant was not changed: SESSIONGATE_DATA_URL is not set, so this service cannot write to the session');
  });

  it.skipIf(!hasPython)('python-upstream: accepts the gateway-minted header and uses sub and roles', async () => {
    const r = await get(`${base}/api/reports/monthly?year=2025`, { cookie: cookie.dave! });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ service: 'python-upstream', route: 'reports', path: '/api/reports/monthly', user: { sub: 'dave', roles: ['analyst', 'billing'] } });
    // the gateway's policy came first: alice never reaches the upstream
    expect((await get(`${base}/api/reports/monthly`, { cookie: cookie.alice! })).status).toBe(403);
  });

  it.skipIf(!hasPython)('python-upstream: refuses a missing, forged, expired, tampered or misdirected header', async () => {
    const reports = `${py!.url}/api/reports/monthly`;
    const ok = (c: Claims = {}) => hs256(secret, kid, { aud: 'reports', roles: ['analyst', 'billing'], ...c });
    const refused = async (token: string | undefined, why: RegExp) => {
      const r = await get(reports, token === undefined ? {} : { 'x-session': token });
      expect(r.status, `${why}`).toBe(401);
      expect(r.body.error).toBe('unauthenticated');
      expect(r.body.message).toMatch(why);
    };
    expect((await get(reports, { 'x-session': await ok() })).body.user).toEqual({ sub: 'mallory', roles: ['analyst', 'billing'] });

    await refused(undefined, /missing/);
    await refused(await mintedForEcho('alice'), /wrong aud/);
    await refused(await hs256(new Uint8Array(32).fill(7), kid, { aud: 'reports' }), /bad signature/);
    await refused(await ok({ iat: now() - 120, exp: now() - 60 }), /expired/);
    await refused(await ok({ nbf: now() + 60 }), /not yet valid/);
    await refused(await ok({ iss: 'someone-else' }), /wrong iss/);
    await refused(await hs256(secret, 'other-kid', { aud: 'reports' }), /unknown kid/);
    await refused(tampered(await ok(), { roles: ['admin'] }), /bad signature/);
    await refused(unsigned({ aud: 'reports' }), /alg must be HS256/);
    await refused('not.a-token', /not a compact JWS/);
    expect((await get(reports, { 'x-session': await ok({ iat: now() - 62, exp: now() - 2 }) })).status).toBe(200);
  });

  it('embed-fastify: the gateway inside an existing app leaves its own routes untouched', async () => {
    const routesFile = path.join(dir, 'embed-routes.yaml');
    writeFileSync(routesFile, routes({ node: node.url, python: py?.url ?? node.url, echo: echo.url }));
    const app = await buildApp({
      env: { REDIS_URL: inject('redisUrl'), SESSIONGATE_REDIS_PREFIX: gw.keyPrefix, X_SESSION_KEYS: gw.keysJson, SESSIONGATE_ROUTES: routesFile },
      logger: false,
    });
    try {
      // requests before Redis answers fail closed (503); this test starts from a connected app
      expect(await waitUntilReady(app.sessions.redis, 5000)).toBe(true);
      expect((await app.inject('/health')).json()).toEqual({ status: 'ok' });
      expect((await app.inject('/hello')).json()).toEqual({ hello: 'world' });
      expect((await app.inject({ url: '/hello', headers: { cookie: cookie.alice! } })).json()).toEqual({ hello: 'alice' });
      // everything else is the gateway's: policy, X-Session, proxy
      const anonymous = await app.inject('/api/orders/1');
      expect(anonymous.statusCode).toBe(401);
      expect(anonymous.json()).toMatchObject({ error: 'unauthenticated' });
      const order = await app.inject({ url: '/api/orders/1', headers: { cookie: cookie.alice! } });
      expect(order.statusCode).toBe(200);
      expect(order.json()).toMatchObject({ service: 'node-upstream', user: { sub: 'alice' } });
      expect((await app.inject({ url: '/admin', headers: { cookie: cookie.alice! } })).statusCode).toBe(403);
      expect((await app.inject('/nowhere')).statusCode).toBe(404);
    } finally {
      await app.close();
    }
  });
});

describe('EdDSA: the gateway signs, upstreams verify through its JWKS', () => {
  let gw: TestGateway;
  let node: Example;
  let base: string;
  let alice: string;
  let kid: string;

  beforeAll(async () => {
    const nodePort = await freePort();
    const gwPort = await freePort();
    const echo = `http://127.0.0.1:${nodePort}`;
    const dataPort = await freePort();
    // here the app route declares no session data: the gateway refuses the page's writes
    gw = await startTestGateway({
      redisUrl: inject('redisUrl'),
      alg: 'EdDSA',
      routes: routes({ node: echo, python: echo, echo }, false),
      env: { SESSION_DATA_PORT: String(dataPort) },
    });
    await gw.gw.app.listen({ port: gwPort, host: '127.0.0.1' });
    await gw.gw.sessionData!.listen({ port: dataPort, host: '127.0.0.1' });
    base = `http://127.0.0.1:${gwPort}`;
    kid = (JSON.parse(gw.keysJson) as { keys: { kid: string }[] }).keys[0]!.kid;
    node = await startExample(
      process.execPath,
      [NODE_EXAMPLE],
      { GATEWAY_JWKS_URL: `${base}/.well-known/jwks.json`, SESSIONGATE_DATA_URL: `http://127.0.0.1:${dataPort}/_sessiongate/session-data` },
      nodePort,
    );
    alice = `sid=${await gw.login('alice', ['user'])}`;
  });

  afterAll(async () => {
    await gw?.close();
  });

  it('node-upstream: accepts the gateway-minted header, fetching the public key from the JWKS', async () => {
    expect(node.output()).toMatch(/EdDSA, public keys from http:\/\/127\.0\.0\.1:\d+\/\.well-known\/jwks\.json/);
    const r = await get(`${base}/api/orders/7`, { cookie: alice });
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ service: 'node-upstream', user: { sub: 'alice', roles: ['user'] }, order: { id: '7' } });
  });

  it('node-upstream /app: shows the gateway’s reason when it refuses the tenant, and keeps none', async () => {
    const refused = await chooseTenant(base, alice, 'initech');
    expect(refused.status).toBe(403);
    expect(tenantPage(refused.html)).toEqual({
      tenant: '(none chosen)',
      error: expect.stringMatching(/^The tenant was not changed: Route &quot;app&quot; declares no session data namespace/),
    });
    expect(tenantPage((await get(`${base}/app`, { cookie: alice })).body as string).tenant).toBe('(none chosen)');
  });

  it('node-upstream: refuses a header signed by another key, or with HS256 whatever its secret', async () => {
    const orders = `${node.url}/orders/1`;
    const claims = (jwt: SignJWT) =>
      jwt.setIssuer('sessiongate').setAudience('orders').setSubject('mallory').setIssuedAt().setExpirationTime('1m');
    // same kid, another Ed25519 key pair
    const { privateKey } = generateKeyPairSync('ed25519');
    const forged = await claims(new SignJWT({ roles: ['admin'] }).setProtectedHeader({ alg: 'EdDSA', kid, typ: 'JWT' })).sign(privateKey);
    // algorithm confusion: HS256 keyed with the published public key
    const jwks = (await get(`${base}/.well-known/jwks.json`)).body as { keys: { x: string }[] };
    const confused = await claims(new SignJWT({ roles: ['admin'] }).setProtectedHeader({ alg: 'HS256', kid, typ: 'JWT' })).sign(
      new TextEncoder().encode(jwks.keys[0]!.x),
    );
    for (const [token, why] of [
      [forged, /signature/],
      [confused, /alg/],
      [unsigned({}), /alg/],
    ] as const) {
      const r = await get(orders, { 'x-session': token });
      expect(r.status, `${why}`).toBe(401);
      expect(r.body.message).toMatch(why);
    }
  });
});
