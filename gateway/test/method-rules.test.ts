import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { startTestGateway, routesYaml, type TestGateway } from '../../test/support/gateway.js';
import { rawRequest } from '../../test/support/raw-http.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';

// Per-method rules hold only if the upstream runs the method the gateway decided on: no
// `_method` override (Rails, Laravel, Symfony) and no unlisted method slipping under the
// route's default rule.

let up: Upstream;
let t: TestGateway;
let port: number;
let alice: string;
let bob: string;

const EXTRA = `  - name: dav
    prefix: /dav
    upstream: UP
    roles: [user]
    methods:
      PROPFIND: { auth: required }
      PURGE: { roles: [admin] }
  - name: legacy
    prefix: /legacy
    upstream: UP
    roles: [user]
    methodOverride: allow
    methods:
      DELETE: { roles: [admin] }
`;

beforeAll(async () => {
  up = await startUpstream('svc');
  t = await startTestGateway({ redisUrl: inject('redisUrl'), routes: routesYaml({ public: up.url }, EXTRA.replaceAll('UP', up.url)) });
  port = await t.listen();
  alice = await t.login('alice', ['user']);
  bob = await t.login('bob', ['user', 'admin']);
});

afterAll(async () => {
  await t?.close();
  await up?.close();
});

beforeEach(() => up.clear());

function send(method: string, target: string, o: { token?: string; headers?: [string, string][]; body?: string } = {}) {
  const headers: [string, string][] = [['Sec-Fetch-Site', 'same-origin'], ...(o.headers ?? [])];
  if (o.token) headers.push(['Cookie', `sid=${o.token}`]);
  return rawRequest(port, { method, target, headers, body: o.body });
}

const FORM: [string, string] = ['Content-Type', 'application/x-www-form-urlencoded'];

describe('_method overrides', () => {
  it('refuses a _method query parameter in any spelling, with a 400 that says why', async () => {
    // alice may POST to /api/orders but not DELETE: each of these would run as DELETE upstream
    for (const q of ['_method=DELETE', 'a=1&_method=DELETE', '_METHOD=delete', '%5Fmethod=DELETE', '_%6D%65thod=DELETE', '_method[]=DELETE', '+_method=DELETE', '.method=DELETE', 'a=1;_method=DELETE', '_method', '_method%00x=DELETE']) {
      const res = await send('POST', `/api/orders/1?${q}`, { token: alice, headers: [FORM], body: 'x=1' });
      expect(res.status, q).toBe(400);
      expect(res.json().error, q).toBe('method_override_refused');
      expect(res.json().message, q).toMatch(/_method parameter \(in the query\) is refused/);
    }
    // also where no session is involved, and for GET
    expect((await send('GET', '/public/p?_method=DELETE')).status).toBe(400);
    expect(up.received).toEqual([]);
  });

  it('refuses _method in a urlencoded POST body (or one without Content-Type) before anything is forwarded', async () => {
    for (const [headers, body] of <[[string, string][], string][]>[
      [[FORM], '_method=DELETE'],
      [[FORM], 'title=x&_method=delete'],
      [[['Content-Type', 'Application/X-WWW-Form-Urlencoded; charset=UTF-8']], 'a=1&%5Fmethod=DELETE'],
      [[FORM], `pad=${'y'.repeat(200_000)}&_method=DELETE`],
      [[], '_method=DELETE'],
    ]) {
      const res = await send('POST', '/api/orders/1', { token: alice, headers, body });
      expect(res.status, body.slice(0, 40)).toBe(400);
      expect(res.json().error).toBe('method_override_refused');
      expect(res.json().message).toMatch(/in the request body/);
    }
    expect(up.received).toEqual([]);
  });

  it('forwards forms and queries without _method byte for byte', async () => {
    const body = 'title=a+method&methods=GET&x_method=1&_methodical=yes';
    const res = await send('POST', '/api/orders/1?method=x&my_method=1', { token: alice, headers: [['Content-Type', 'application/x-www-form-urlencoded; charset=UTF-8']], body });
    expect(res.status).toBe(200);
    const rec = up.last();
    expect(rec.method).toBe('POST');
    expect(rec.url).toBe('/orders/1?method=x&my_method=1');
    expect(rec.body).toBe(body);
    expect(rec.headers['content-type']).toBe('application/x-www-form-urlencoded; charset=UTF-8');
    // other media types stream through unread
    const json = await send('POST', '/api/orders/1', { token: alice, headers: [['Content-Type', 'application/json']], body: '{"_method":"DELETE"}' });
    expect(json.status).toBe(200);
    expect(up.last().body).toBe('{"_method":"DELETE"}');
  });

  it('still answers 413 for an oversized form body', async () => {
    const res = await send('POST', '/api/orders/1', { token: alice, headers: [FORM], body: `a=${'z'.repeat(1024 * 1024 + 10)}` });
    expect(res.status).toBe(413);
    expect(up.received).toEqual([]);
  });

  it('passes _method through on a route with methodOverride: allow', async () => {
    const res = await send('POST', '/legacy/x?_method=PUT', { token: alice, headers: [FORM], body: '_method=DELETE' });
    expect(res.status).toBe(200);
    expect(up.last().body).toBe('_method=DELETE');
    expect(up.last().url).toBe('/legacy/x?_method=PUT');
  });
});

describe('methods a route does not list', () => {
  it('answers 405 for PURGE, PROPFIND, MOVE… unless the route lists them, and forwards nothing', async () => {
    for (const [method, target, token] of [['PURGE', '/public/p', undefined], ['PROPFIND', '/api/orders/1', alice], ['MOVE', '/api/orders/1', bob], ['MKCOL', '/dav/x', bob], ['COPY', '/public/p', undefined], ['SEARCH', '/public/p', undefined]] as const) {
      const res = await send(method, target, { token });
      expect(res.status, `${method} ${target}`).toBe(405);
      expect(res.json().error).toBe('method_not_allowed');
    }
    expect(up.received).toEqual([]);
  });

  it('applies the listed rule to a listed method, body included', async () => {
    const propfind = await send('PROPFIND', '/dav/x', { token: alice, headers: [['Content-Type', 'application/xml'], ['Depth', '1']], body: '<propfind xmlns="DAV:"><allprop/></propfind>' });
    expect(propfind.status).toBe(200);
    expect(up.last().method).toBe('PROPFIND');
    expect(up.last().body).toBe('<propfind xmlns="DAV:"><allprop/></propfind>');
    expect((await send('PURGE', '/dav/x', { token: alice })).status).toBe(403);
    expect((await send('PURGE', '/dav/x', { token: bob })).status).toBe(200);
    expect(up.last().method).toBe('PURGE');
    expect((await send('PROPFIND', '/dav/x')).status).toBe(401);
  });

  it('keeps the route rule for the common methods', async () => {
    for (const m of ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'OPTIONS']) expect((await send(m, '/api/orders/1', { token: alice })).status, m).toBe(200);
    expect((await send('DELETE', '/api/orders/1', { token: alice })).status).toBe(403);
    expect((await send('DELETE', '/api/orders/1', { token: bob })).status).toBe(200);
  });
});
