import type { IncomingMessage } from 'node:http';
import { Writable } from 'node:stream';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { parseKeySet, sessionRef, userTag } from '@sessiongate/session';
import { startTestGateway, type TestGateway } from '../../test/support/gateway.js';
import { freePort } from '../../test/support/redis-server.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';

// Session data: upstreams keep keys in the user's session through the gateway's session data
// endpoint, with the X-Session of the request they answer. Two gateways (caches on) on one
// real Redis, real upstreams that write from inside their request handlers, and the data
// endpoint on a listener of its own.

const ROUTES = (shop: string, other: string) => `version: 1
routes:
  - name: shop
    prefix: /shop
    upstream: ${shop}
    roles: [user]
    sessionData:
      namespace: cart
      maxBytes: 200
      readers: [checkout]
  - name: prefs
    prefix: /prefs
    upstream: ${shop}
    sessionData:
      namespace: prefs
      maxBytes: 4kb
      delete: true
  - name: big-a
    prefix: /big-a
    upstream: ${shop}
    sessionData: { namespace: big-a, maxBytes: 4kb, readers: [wide] }
  - name: big-b
    prefix: /big-b
    upstream: ${shop}
    sessionData: { namespace: big-b, maxBytes: 4kb, readers: [wide] }
  - name: wide
    prefix: /wide
    upstream: ${other}
  - name: checkout
    prefix: /checkout
    upstream: ${other}
  - name: orders
    prefix: /orders
    upstream: ${other}
  - name: opt
    prefix: /opt
    upstream: ${shop}
    auth: optional
    sessionData: { namespace: opt }
`;

interface WriteAnswer {
  status: number;
  body: { namespace?: string; bytes?: number; error?: string; message?: string };
}

let shop: Upstream;
let other: Upstream;
let gw1: TestGateway;
let gw2: TestGateway;
let gw3: TestGateway;
let dataUrl1: string;
let dataUrl2: string;
const logs: string[] = [];

/** The shop upstream writes what the client's request asks (JSON body) and answers with the gateway's reply. */
function writingUpstream(dataUrl: () => string) {
  return (req: IncomingMessage, res: import('node:http').ServerResponse, rec: { body: string }) => {
    if (req.method === 'GET') return void res.end('{}');
    const xSession = req.headers['x-session'];
    fetch(dataUrl(), {
      method: 'PATCH',
      headers: { 'content-type': 'application/json', ...(typeof xSession === 'string' ? { 'x-session': xSession } : {}) },
      body: rec.body,
    }).then(async (r) => {
      const answer = { status: r.status, body: await r.json() };
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ shop: 'ok', write: answer }));
    }, (err: Error) => {
      res.statusCode = 500;
      res.end(err.message);
    });
  };
}

let currentDataUrl = '';

beforeAll(async () => {
  const redisUrl = inject('redisUrl');
  shop = await startUpstream('shop');
  other = await startUpstream('other');
  const routes = ROUTES(shop.url, other.url);
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString('utf8'));
      cb();
    },
  });
  gw1 = await startTestGateway({
    redisUrl,
    routes,
    env: { SESSION_CACHE_TTL: '60s', SESSION_DATA_PORT: String(await freePort()), SESSIONGATE_FORWARD_AUTH_PROXIES: '127.0.0.1/32' },
    logStream: sink,
  });
  const common = { redisUrl, routes, keyPrefix: gw1.keyPrefix, keysJson: gw1.keysJson };
  gw2 = await startTestGateway({ ...common, env: { SESSION_CACHE_TTL: '60s', SESSION_DATA_PORT: String(await freePort()) } });
  // a third gateway without a cache: the data is in the record it reads each time
  gw3 = await startTestGateway({ ...common, env: { SESSION_CACHE: 'false' } });
  dataUrl1 = `${await gw1.gw.sessionData!.listen({ port: 0, host: '127.0.0.1' })}/_sessiongate/session-data`;
  dataUrl2 = `${await gw2.gw.sessionData!.listen({ port: 0, host: '127.0.0.1' })}/_sessiongate/session-data`;
  currentDataUrl = dataUrl1;
  shop.respond(writingUpstream(() => currentDataUrl));
});

afterAll(async () => {
  await gw3?.close();
  await gw2?.close();
  await gw1?.close();
  await other?.close();
  await shop?.close();
});

beforeEach(() => {
  currentDataUrl = dataUrl1;
  shop.clear();
  other.clear();
});

/** The claims of the X-Session an upstream received (the signature is checked by the identity tests). */
function claimsOf(up: Upstream): Record<string, unknown> {
  const header = up.last().headers['x-session'];
  expect(typeof header).toBe('string');
  return JSON.parse(Buffer.from((header as string).split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** A request through gateway `g` to `path` whose upstream writes `body`; resolves what the client got. */
async function writeThrough(g: TestGateway, path: string, token: string | null, body: unknown) {
  const res = await g.gw.app.inject({
    method: 'POST',
    url: path,
    headers: { ...(token ? { cookie: `sid=${token}` } : {}), 'sec-fetch-site': 'same-origin', 'content-type': 'application/json' },
    payload: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.statusCode, body: res.json() as { shop: string; write: WriteAnswer } };
}

/** The X-Session gateway 1 sends with a GET to `path` for this session (the shop upstream writes only on POST). */
async function xSessionFor(path: string, token: string): Promise<string> {
  other.clear();
  shop.clear();
  expect((await gw1.gw.app.inject({ url: path, headers: { cookie: `sid=${token}` } })).statusCode).toBe(200);
  const upstream = shop.received.length > 0 ? shop : other;
  return upstream.last().headers['x-session'] as string;
}

async function patch(url: string, xSession: string | null, body: string): Promise<WriteAnswer> {
  const r = await fetch(url, { method: 'PATCH', headers: { 'content-type': 'application/json', ...(xSession ? { 'x-session': xSession } : {}) }, body });
  return { status: r.status, body: (await r.json()) as WriteAnswer['body'] };
}

async function rawRecord(token: string): Promise<string | null> {
  return gw1.redis.get(gw1.store.keys.session(sessionRef(token)));
}

async function writes(g: TestGateway, route: string, outcome: string): Promise<number> {
  const { values } = await g.gw.metrics.sessionDataWrites.get();
  return values.find((v) => v.labels.route === route && v.labels.outcome === outcome)?.value ?? 0;
}

describe('an upstream writes to its namespace, readers get it in X-Session', () => {
  it('is visible to the next request on another gateway with a warm cache within 1 s, to declared readers only', async () => {
    const token = await gw1.login('alice', ['user']);
    // gateway 2 holds the session in its cache before the write
    expect((await gw2.gw.app.inject({ url: '/checkout', headers: { cookie: `sid=${token}` } })).statusCode).toBe(200);
    expect(claimsOf(other).sg_data).toBeUndefined();

    const before = await writes(gw1, 'shop', 'written');
    const t0 = performance.now();
    const res = await writeThrough(gw1, '/shop/cart', token, { id: 'c-42', items: 3 });
    expect(res.status).toBe(200);
    expect(res.body.write).toEqual({ status: 200, body: { namespace: 'cart', bytes: expect.any(Number), sessionBytes: expect.any(Number) } });
    expect(await writes(gw1, 'shop', 'written')).toBe(before + 1);

    let seen: unknown;
    for (;;) {
      other.clear();
      expect((await gw2.gw.app.inject({ url: '/checkout', headers: { cookie: `sid=${token}` } })).statusCode).toBe(200);
      seen = claimsOf(other).sg_data;
      if (seen !== undefined || performance.now() - t0 > 1000) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(seen).toEqual({ cart: { id: 'c-42', items: 3 } });

    // the writing route reads its own namespace; a route that is not a reader gets nothing
    expect((await gw2.gw.app.inject({ url: '/shop/x', headers: { cookie: `sid=${token}` } })).statusCode).toBe(200);
    expect(claimsOf(shop).sg_data).toEqual({ cart: { id: 'c-42', items: 3 } });
    other.clear();
    expect((await gw2.gw.app.inject({ url: '/orders', headers: { cookie: `sid=${token}` } })).statusCode).toBe(200);
    expect(claimsOf(other).sg_data).toBeUndefined();
    // a gateway without a cache reads it with the record
    other.clear();
    expect((await gw3.gw.app.inject({ url: '/checkout', headers: { cookie: `sid=${token}` } })).statusCode).toBe(200);
    expect(claimsOf(other).sg_data).toEqual({ cart: { id: 'c-42', items: 3 } });
  });

  it('adds and overwrites keys of its own namespace only, never the identity', async () => {
    const token = await gw1.login('bob', ['user'], { claims: { email: 'bob@example.com' } });
    expect((await writeThrough(gw1, '/shop/cart', token, { id: 'c-1' })).body.write.status).toBe(200);
    // identity-looking keys land inside the namespace, as plain data
    expect((await writeThrough(gw1, '/shop/cart', token, { id: 'c-2', sub: 'mallory', roles: 'admin' })).body.write.status).toBe(200);
    expect((await writeThrough(gw1, '/prefs/x', token, { theme: 'dark' })).body.write.status).toBe(200);
    other.clear();
    expect((await gw1.gw.app.inject({ url: '/checkout', headers: { cookie: `sid=${token}` } })).statusCode).toBe(200);
    const claims = claimsOf(other);
    expect(claims.sub).toBe('bob');
    expect(claims.roles).toEqual(['user']);
    expect(claims.email).toBe('bob@example.com');
    // checkout reads cart only, not prefs
    expect(claims.sg_data).toEqual({ cart: { id: 'c-2', sub: 'mallory', roles: 'admin' } });
    const stored = await gw1.store.list('bob');
    expect(stored[0]!.data.map((d) => d.namespace)).toEqual(['cart', 'prefs']);
  });
});

describe('atomic writes', () => {
  it('concurrent writes from two gateways never lose one another’s keys', async () => {
    const token = await gw1.login('carol', ['user']);
    const xSession = await xSessionFor('/prefs/a', token);
    const N = 40;
    const answers = await Promise.all(
      Array.from({ length: N }, (_, i) => patch(i % 2 ? dataUrl1 : dataUrl2, xSession, JSON.stringify({ [`k${i}`]: i }))),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(N).fill(200));
    const record = await gw1.store.list('carol');
    const raw = (await rawRecord(token))!;
    const data = JSON.parse(raw.slice(raw.indexOf('\n') + 1)) as { prefs: Record<string, number> };
    expect(Object.keys(data.prefs).sort()).toEqual(Array.from({ length: N }, (_, i) => `k${i}`).sort());
    expect(record[0]!.data).toEqual([{ namespace: 'prefs', bytes: expect.any(Number) }]);
  });

  it('never extends a session past its deadlines and never revives an ended one', async () => {
    const token = await gw1.login('dave', ['user'], { idleTimeoutMs: 60_000 });
    const key = gw1.store.keys.session(sessionRef(token));
    await gw1.redis.pexpire(key, 20_000);
    const xSession = await xSessionFor('/prefs/a', token);
    expect((await patch(dataUrl1, xSession, '{"a":1}')).status).toBe(200);
    const pttl = await gw1.redis.pttl(key);
    expect(pttl).toBeGreaterThan(0);
    expect(pttl).toBeLessThanOrEqual(20_000);

    // the session ends (a logout elsewhere); the upstream's header is still within its lifetime
    expect(await gw1.store.destroyBySid('dave', sessionRef(token).sid)).toBe(true);
    const answer = await patch(dataUrl1, xSession, '{"b":2}');
    expect(answer).toEqual({ status: 410, body: expect.objectContaining({ error: 'session_gone' }) });
    expect(await gw1.redis.exists(key)).toBe(0);
  });
});

describe('add-only unless the route declares delete', () => {
  it('refuses a delete on an add-only namespace and leaves the session as it was', async () => {
    const token = await gw1.login('erin', ['user']);
    expect((await writeThrough(gw1, '/shop/cart', token, { id: 'c-9' })).body.write.status).toBe(200);
    const before = await rawRecord(token);
    const res = await writeThrough(gw1, '/shop/cart', token, { id: null });
    expect(res.status).toBe(200);
    expect(res.body.write).toEqual({ status: 403, body: expect.objectContaining({ error: 'session_data_delete_refused' }) });
    expect(await rawRecord(token)).toBe(before);
  });

  it('deletes keys where the route declares delete: true', async () => {
    const token = await gw1.login('frank', ['user']);
    expect((await writeThrough(gw1, '/prefs/x', token, { theme: 'dark', lang: 'fr' })).body.write.status).toBe(200);
    expect((await writeThrough(gw1, '/prefs/x', token, { theme: null })).body.write).toEqual({ status: 200, body: expect.objectContaining({ namespace: 'prefs' }) });
    const raw = (await rawRecord(token))!;
    expect(JSON.parse(raw.slice(raw.indexOf('\n') + 1))).toEqual({ prefs: { lang: 'fr' } });
    // deleting the last key removes the namespace, and the record is as it was without data
    expect((await writeThrough(gw1, '/prefs/x', token, { lang: null })).body.write.status).toBe(200);
    expect((await rawRecord(token))!.includes('\n')).toBe(false);
  });
});

describe('bad writes are refused: the upstream is told, the client gets the upstream’s answer, the session is untouched', () => {
  it.each([
    ['over the namespace cap', { id: 'x'.repeat(300) }, 413, 'session_data_too_large', 'too_large'],
    ['a nested value', { id: { deep: 1 } }, 400, 'session_data_malformed', 'malformed'],
    ['a number Redis cannot keep exactly', { n: 0.1 + 0.2 }, 400, 'session_data_malformed', 'malformed'],
    ['a bad key', { 'no spaces': 1 }, 400, 'session_data_malformed', 'malformed'],
    ['nothing', {}, 400, 'session_data_malformed', 'malformed'],
    ['not JSON', 'id=1', 400, 'session_data_malformed', 'malformed'],
  ])('%s', async (_what, body, status, error, outcome) => {
    const token = await gw1.login('grace', ['user']);
    expect((await writeThrough(gw1, '/shop/cart', token, { id: 'kept' })).body.write.status).toBe(200);
    const before = await rawRecord(token);
    const counted = await writes(gw1, 'shop', outcome);
    const logged = logs.length;
    const res = await writeThrough(gw1, '/shop/cart', token, body);
    expect(res.status).toBe(200);
    expect(res.body.shop).toBe('ok');
    expect(res.body.write).toEqual({ status, body: expect.objectContaining({ error, message: expect.any(String) }) });
    expect(await rawRecord(token)).toBe(before);
    expect(await writes(gw1, 'shop', outcome)).toBe(counted + 1);
    const line = logs.slice(logged).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'session data write refused');
    expect(line).toMatchObject({ route: 'shop', outcome });
  });

  it('refuses a body over 16 KiB before reading it whole', async () => {
    const token = await gw1.login('gus', ['user']);
    const xSession = await xSessionFor('/prefs/a', token);
    const before = await rawRecord(token);
    const counted = await writes(gw1, 'prefs', 'too_large');
    expect(await patch(dataUrl1, xSession, JSON.stringify({ a: 'x'.repeat(17 * 1024) }))).toEqual({ status: 413, body: expect.objectContaining({ error: 'payload_too_large' }) });
    expect(await rawRecord(token)).toBe(before);
    expect(await writes(gw1, 'prefs', 'too_large')).toBe(counted + 1);
  });

  it('refuses a write from a route that declares no namespace', async () => {
    const token = await gw1.login('heidi', ['user']);
    const xSession = await xSessionFor('/orders', token);
    const before = await rawRecord(token);
    expect(await patch(dataUrl1, xSession, '{"a":1}')).toEqual({ status: 403, body: expect.objectContaining({ error: 'session_data_undeclared' }) });
    expect(await rawRecord(token)).toBe(before);
  });

  it('refuses a write on a request without a session', async () => {
    const res = await writeThrough(gw1, '/opt/x', null, { a: 1 });
    expect(res.body.write).toEqual({ status: 401, body: expect.objectContaining({ error: 'session_data_unauthenticated' }) });
  });

  it('refuses data that would push X-Session past its size limit, with the reason', async () => {
    const token = await gw1.login('ivan', ['user']);
    expect((await writeThrough(gw1, '/big-a/x', token, { v: 'a'.repeat(1000), w: 'a'.repeat(1000), x: 'a'.repeat(1000) })).body.write.status).toBe(200);
    const before = await rawRecord(token);
    const res = await writeThrough(gw1, '/big-b/x', token, { v: 'b'.repeat(1000), w: 'b'.repeat(1000), x: 'b'.repeat(1000) });
    expect(res.body.write.status).toBe(413);
    expect(res.body.write.body.message).toMatch(/X-Session header has room/);
    expect(await rawRecord(token)).toBe(before);
    // the reader of both still gets a header
    expect((await gw1.gw.app.inject({ url: '/wide', headers: { cookie: `sid=${token}` } })).statusCode).toBe(200);
  });
});

describe('behind forward auth', () => {
  it('the application writes with the X-Session the forward-auth endpoint gave its proxy', async () => {
    const token = await gw1.login('olga', ['user']);
    const port = await gw1.listen();
    const ask = () =>
      fetch(`http://127.0.0.1:${port}/_sessiongate/authz`, {
        headers: { cookie: `sid=${token}`, 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/prefs/page', 'x-forwarded-host': 'localhost' },
      });
    const answer = await ask();
    expect(answer.status).toBe(200);
    expect((await patch(dataUrl1, answer.headers.get('x-session'), '{"theme":"dark"}')).status).toBe(200);
    const next = (await ask()).headers.get('x-session')!;
    const claims = JSON.parse(Buffer.from(next.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
    expect(claims.sg_data).toEqual({ prefs: { theme: 'dark' } });
  });
});

describe('a client cannot forge a write', () => {
  it('the main listener never serves the endpoint', async () => {
    const token = await gw1.login('judy', ['user']);
    const xSession = await xSessionFor('/shop/x', token);
    const before = await rawRecord(token);
    const res = await gw1.gw.app.inject({
      method: 'PATCH',
      url: '/_sessiongate/session-data',
      headers: { cookie: `sid=${token}`, 'x-session': xSession, 'sec-fetch-site': 'same-origin', 'content-type': 'application/json' },
      payload: '{"id":"forged"}',
    });
    expect(res.statusCode).toBe(404);
    expect(await rawRecord(token)).toBe(before);
  });

  it('an X-Session sent by the client is never what the upstream writes with', async () => {
    const token = await gw1.login('ken', ['user']);
    const forged = await new SignJWT({ sub: 'ken', sid: sessionRef(token).sid, roles: ['user'], amr: ['session'] })
      .setProtectedHeader({ alg: 'HS256', kid: 'attacker' })
      .setIssuer('sessiongate')
      .setAudience('prefs')
      .setExpirationTime('1m')
      .sign(new TextEncoder().encode('a'.repeat(32)));
    const res = await gw1.gw.app.inject({
      method: 'POST',
      url: '/shop/cart',
      headers: { cookie: `sid=${token}`, 'x-session': forged, 'sec-fetch-site': 'same-origin', 'content-type': 'application/json' },
      payload: '{"id":"mine"}',
    });
    // the upstream got the gateway's own header (route shop), not the client's (route prefs)
    expect(res.json().write.status).toBe(200);
    expect(claimsOf(shop).aud).toBe('shop');
    // and the forged one, sent straight to the endpoint, is refused
    expect(await patch(dataUrl1, forged, '{"a":1}')).toEqual({ status: 401, body: expect.objectContaining({ error: 'session_data_unauthenticated' }) });
  });

  it('refuses an X-Session that has expired, or that names no browser session', async () => {
    const token = await gw1.login('leo', ['user']);
    const key = parseKeySet(gw1.keysJson, 'test').signing;
    if (key.alg !== 'HS256') throw new Error('the test gateway signs with HS256');
    const sign = (claims: Record<string, unknown>, exp: number) =>
      new SignJWT(claims).setProtectedHeader({ alg: 'HS256', kid: key.kid }).setIssuer('sessiongate').setAudience('prefs').setExpirationTime(exp).sign(key.secret);
    const now = Math.floor(Date.now() / 1000);
    const expired = await sign({ sub: 'leo', sid: sessionRef(token).sid, roles: ['user'], amr: ['session'] }, now - 10);
    expect((await patch(dataUrl1, expired, '{"a":1}')).body).toMatchObject({ error: 'session_data_unauthenticated', message: expect.stringMatching(/expired/) });
    const apiKey = await sign({ sub: 'leo', sid: 'k1', roles: ['user'], amr: ['api_key'] }, now + 60);
    expect(await patch(dataUrl1, apiKey, '{"a":1}')).toEqual({ status: 409, body: expect.objectContaining({ error: 'session_data_no_session' }) });
    // a well-signed header can still only reach its own user's session: the key is built from its sub
    const otherUser = await sign({ sub: 'mallory', sid: sessionRef(token).sid, roles: ['user'], amr: ['session'] }, now + 60);
    expect((await patch(dataUrl1, otherUser, '{"a":1}')).status).toBe(userTag('mallory') === userTag('leo') ? 409 : 410);
    expect((await rawRecord(token))!.includes('\n')).toBe(false);
  });

  it('a response header an upstream reflects from the request writes nothing', async () => {
    const token = await gw1.login('mia', ['user']);
    other.respond((req, res) => {
      for (const [k, v] of Object.entries(req.headers)) if (k.startsWith('x-')) res.setHeader(k, v as string);
      res.end('{}');
    });
    try {
      const before = await rawRecord(token);
      const res = await gw1.gw.app.inject({
        url: '/checkout',
        headers: { cookie: `sid=${token}`, 'x-sessiongate-data': '{"cart":{"id":"forged"}}', 'x-session-data': '{"id":"forged"}' },
      });
      expect(res.statusCode).toBe(200);
      expect(await rawRecord(token)).toBe(before);
    } finally {
      other.respond((_req, res) => res.end('{}'));
    }
  });
});
