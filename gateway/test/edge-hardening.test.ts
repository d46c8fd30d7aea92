import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { REROUTING_HEADERS } from '../src/proxy/headers.js';
import { startTestGateway, routesYaml, type TestGateway } from '../../test/support/gateway.js';
import { rawRequest } from '../../test/support/raw-http.js';
import { headerValues, startUpstream, type Upstream } from '../../test/support/upstream.js';

// CSRF, trusted proxies, re-routing headers and cookie limits: the edge's defences.

let up: Upstream;
let t: TestGateway;
let alice: string;

const EXTRA_ROUTE = `  - name: webhook
    prefix: /webhook
    upstream: UPSTREAM
    roles: [user]
    csrf: false
`;

beforeAll(async () => {
  up = await startUpstream('svc');
  t = await startTestGateway({
    redisUrl: inject('redisUrl'),
    routes: routesYaml({ public: up.url }, EXTRA_ROUTE.replace('UPSTREAM', up.url)),
    env: { SESSIONGATE_TRUSTED_PROXIES: '10.0.0.0/8, 127.0.0.1/32' },
  });
  alice = await t.login('alice', ['user']);
});

afterAll(async () => {
  await t?.close();
  await up?.close();
});

function post(url: string, headers: Record<string, string>) {
  return t.gw.app.inject({ method: 'POST', url, headers: { host: 'gw.example', ...headers }, payload: 'x=1' });
}

describe('CSRF on cookie-authenticated writes', () => {
  it('refuses a write with no origin evidence, or from a foreign origin', async () => {
    for (const headers of <Record<string, string>[]>[{}, { origin: 'https://evil.example' }, { referer: 'https://evil.example/page' }, { 'sec-fetch-site': 'cross-site', origin: 'https://evil.example' }, { origin: 'null' }]) {
      up.clear();
      const res = await post('/api/orders/1', { cookie: `sid=${alice}`, ...headers });
      expect(res.statusCode, JSON.stringify(headers)).toBe(403);
      expect(res.json().error).toBe('csrf_rejected');
      expect(up.received).toEqual([]);
    }
  });

  it('accepts same-origin writes: Sec-Fetch-Site, Origin, or Referer of the gateway itself', async () => {
    for (const headers of <Record<string, string>[]>[{ 'sec-fetch-site': 'same-origin' }, { origin: 'http://gw.example' }, { referer: 'http://gw.example/orders' }]) {
      const res = await post('/api/orders/1', { cookie: `sid=${alice}`, ...headers });
      expect(res.statusCode, JSON.stringify(headers)).toBe(200);
    }
  });

  it('does not apply without the cookie, to safe methods, or where the route turns it off', async () => {
    expect((await post('/public/form', {})).statusCode).toBe(200);
    expect((await t.gw.app.inject({ url: '/api/orders/1', headers: { cookie: `sid=${alice}`, origin: 'https://evil.example' } })).statusCode).toBe(200);
    expect((await post('/webhook/in', { cookie: `sid=${alice}`, origin: 'https://evil.example' })).statusCode).toBe(200);
  });

  it('accepts the configured allowed origins instead of its own', async () => {
    const other = await startTestGateway({
      redisUrl: inject('redisUrl'),
      routes: routesYaml({ public: up.url }),
      keyPrefix: t.keyPrefix,
      env: { SESSIONGATE_ALLOWED_ORIGINS: 'https://app.example.com' },
    });
    try {
      const send = (origin: string) =>
        other.gw.app.inject({ method: 'POST', url: '/api/orders/1', headers: { host: 'gw.example', cookie: `sid=${alice}`, origin }, payload: '' });
      expect((await send('https://app.example.com')).statusCode).toBe(200);
      expect((await send('http://gw.example')).statusCode).toBe(403);
    } finally {
      await other.close();
    }
  });
});

describe('trusted proxies', () => {
  it('believes X-Forwarded-* only from a trusted peer and appends the peer', async () => {
    // inject() connects from 127.0.0.1, which this gateway trusts
    await t.gw.app.inject({ url: '/public/p', headers: { 'x-forwarded-for': '203.0.113.7, 10.1.2.3', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'shop.example' } });
    const rec = up.last();
    expect(headerValues(rec, 'x-forwarded-for')).toEqual(['203.0.113.7, 10.1.2.3, 127.0.0.1']);
    expect(headerValues(rec, 'x-forwarded-proto')).toEqual(['https']);
    expect(headerValues(rec, 'x-forwarded-host')).toEqual(['shop.example']);
  });

  it('reads RFC 7239 Forwarded from a trusted peer', async () => {
    await t.gw.app.inject({ url: '/public/p', headers: { forwarded: 'for="[2001:db8::1]:4711";proto=https;host=a.example, for=10.0.0.9' } });
    const rec = up.last();
    expect(headerValues(rec, 'x-forwarded-for')).toEqual(['2001:db8::1, 10.0.0.9, 127.0.0.1']);
    expect(headerValues(rec, 'forwarded')).toEqual([]);
  });

  it('ignores them from an untrusted peer', async () => {
    const strict = await startTestGateway({ redisUrl: inject('redisUrl'), routes: routesYaml({ public: up.url }) });
    try {
      await strict.gw.app.inject({ url: '/public/p', headers: { 'x-forwarded-for': '203.0.113.7', 'x-forwarded-proto': 'https', forwarded: 'for=1.2.3.4' } });
      const rec = up.last();
      expect(headerValues(rec, 'x-forwarded-for')).toEqual(['127.0.0.1']);
      expect(headerValues(rec, 'x-forwarded-proto')).toEqual(['http']);
    } finally {
      await strict.close();
    }
  });
});

describe('headers that could re-route a request upstream', () => {
  it('never reach an upstream and never change the route or rule', async () => {
    const headers = Object.fromEntries(REROUTING_HEADERS.map((h) => [h, h.includes('method') ? 'DELETE' : '/admin']));
    const res = await t.gw.app.inject({ url: '/public/p', headers });
    expect(res.statusCode).toBe(200);
    expect(res.json().upstream).toBe('svc');
    const rec = up.last();
    expect(rec.url).toBe('/public/p');
    for (const h of REROUTING_HEADERS) expect(headerValues(rec, h), h).toEqual([]);
    // and on a protected route they don't help either
    expect((await t.gw.app.inject({ url: '/public/p/../../admin', headers })).statusCode).toBe(401);
  });
});

describe('the host a request names', () => {
  const INVALID = ['evil.com@gw:99', 'gw.example:80@evil.com', 'user:pw@gw.example', 'gw.example/admin', 'gw.example?x=1', 'gw.example#x', 'gw example', 'a,b.example', 'gw;x=1', 'gw.example:99999', 'gw.example:8a', ':8080', '[::1', '[::1]x', '[fe80::1%25eth0]', '[not-ip]', '%65vil.com', 'x'.repeat(256), `${'x'.repeat(256)}:80`];

  it('answers 400 for a Host that is not host[:port], and forwards nothing', async () => {
    const port = await t.listen();
    for (const host of INVALID) {
      up.clear();
      const res = await rawRequest(port, { target: '/public/h', headers: [['Host', host]] });
      expect(res.status, host).toBe(400);
      expect(res.json().error, host).toBe('bad_request');
      expect(up.received, host).toEqual([]);
    }
  });

  it('answers 400 for such an X-Forwarded-Host or Forwarded host from a trusted proxy', async () => {
    const port = await t.listen();
    for (const headers of <[string, string][][]>[[['X-Forwarded-For', '203.0.113.7'], ['X-Forwarded-Host', 'evil.com@gw:99']], [['Forwarded', 'for=203.0.113.7;host="a@b"']]]) {
      up.clear();
      const res = await rawRequest(port, { target: '/public/h', headers: [['Host', 'gw.example'], ...headers] });
      expect(res.status, JSON.stringify(headers)).toBe(400);
      expect(up.received).toEqual([]);
    }
  });

  it('forwards a valid host in canonical form (lower case, plain port)', async () => {
    const port = await t.listen();
    for (const [host, canonical] of [['GW.Example:8080', 'gw.example:8080'], ['gw.example', 'gw.example'], ['gw.example:', 'gw.example'], ['gw.example:0080', 'gw.example:80'], ['127.0.0.1:80', '127.0.0.1:80'], ['[2001:DB8::1]:8443', '[2001:db8::1]:8443'], ['svc_1.internal', 'svc_1.internal'], ['x'.repeat(255), 'x'.repeat(255)]]) {
      const res = await rawRequest(port, { target: '/public/h', headers: [['Host', host!]] });
      expect(res.status, host).toBe(200);
      expect(headerValues(up.last(), 'x-forwarded-host'), host).toEqual([canonical]);
    }
    await rawRequest(port, { target: '/public/h', headers: [['Host', 'gw.example'], ['X-Forwarded-For', '203.0.113.7'], ['X-Forwarded-Host', 'Shop.Example']] });
    expect(headerValues(up.last(), 'x-forwarded-host')).toEqual(['shop.example']);
  });
});

describe('cookie limits', () => {
  it('answers 431 JSON for an oversized Cookie header', async () => {
    const res = await t.gw.app.inject({ url: '/public/p', headers: { cookie: `big=${'x'.repeat(9000)}` } });
    expect(res.statusCode).toBe(431);
    expect(res.json().error).toBe('request_header_fields_too_large');
  });
});
