import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { GATEWAY_HEADERS, REROUTING_HEADERS } from '../src/proxy/headers.js';
import { startTestGateway, routesYaml, type TestGateway } from '../../test/support/gateway.js';
import { rawRequest } from '../../test/support/raw-http.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';
import { hasPython, startWsgiUpstream, type WsgiUpstream } from '../../test/support/wsgi-upstream.js';

// A header the gateway owns or strips must not pass in another spelling: CGI, WSGI, PHP
// and Rack fold "_" and "-" (and case) into one HTTP_* variable, so `X_Forwarded_For`
// would reach them as the client address.

const OWNED = [...GATEWAY_HEADERS, ...REROUTING_HEADERS];
const fold = (name: string) => name.toLowerCase().replace(/[_.]/g, '-');

/** `x-forwarded-for` → `X_Forwarded_For` and `X.Forwarded.For`. */
function spellings(name: string): string[] {
  const title = name.split('-').map((w) => w[0]!.toUpperCase() + w.slice(1));
  return [title.join('_'), title.join('.'), name.toUpperCase().replace(/-/g, '_')];
}

function forgedHeaders(): [string, string][] {
  return OWNED.flatMap((name) => spellings(name).map((s): [string, string] => [s, name.includes('method') ? 'DELETE' : name.includes('proto') || name.includes('scheme') ? 'https' : name.includes('url') || name.includes('uri') || name.includes('path') || name.includes('prefix') ? '/admin' : '6.6.6.6']));
}

let up: Upstream;
let wsgi: WsgiUpstream | undefined;
let t: TestGateway;
let port: number;
let alice: string;

beforeAll(async () => {
  up = await startUpstream('svc');
  wsgi = hasPython ? await startWsgiUpstream() : undefined;
  const extra = wsgi ? `  - name: wsgi\n    prefix: /wsgi\n    upstream: ${wsgi.url}\n    auth: none\n` : '';
  // no trusted proxies: the client's word on its address counts for nothing
  t = await startTestGateway({ redisUrl: inject('redisUrl'), routes: routesYaml({ public: up.url }, extra) });
  port = await t.listen();
  alice = await t.login('alice', ['user']);
});

afterAll(async () => {
  await t?.close();
  await up?.close();
  await wsgi?.close();
});

describe('gateway-owned headers in other spellings', () => {
  it('reach a Node upstream only as the gateway wrote them', async () => {
    for (const [target, cookie] of [['/public/p', null], ['/api/orders/1', `sid=${alice}`]] as const) {
      up.clear();
      const headers = forgedHeaders();
      if (cookie) headers.push(['Cookie', cookie]);
      const res = await rawRequest(port, { target, headers: [['Host', 'gw.example'], ...headers] });
      expect(res.status, target).toBe(200);
      const rec = up.last();
      const owned = rec.rawHeaders.filter(([k]) => OWNED.includes(fold(k)));
      const names = owned.map(([k]) => k).sort();
      expect(names, target).toEqual(cookie ? ['x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-session'] : ['x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto']);
      const value = (n: string) => owned.find(([k]) => k === n)?.[1];
      expect(value('x-forwarded-for')).toBe('127.0.0.1');
      expect(value('x-forwarded-proto')).toBe('http');
      expect(value('x-forwarded-host')).toBe('gw.example');
      if (cookie) expect(value('x-session')).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
      expect(rec.method).toBe('GET');
      expect(rec.url).toBe(target === '/public/p' ? '/public/p' : '/orders/1');
    }
  });

  it.skipIf(!hasPython)('reach a Python WSGI upstream (wsgiref) only as the gateway wrote them', async () => {
    const res = await rawRequest(port, { target: '/wsgi/env', headers: [['Host', 'gw.example'], ...forgedHeaders()] });
    expect(res.status).toBe(200);
    const env = res.json() as Record<string, string>;
    expect(env.HTTP_X_FORWARDED_FOR).toBe('127.0.0.1');
    expect(env.HTTP_X_FORWARDED_PROTO).toBe('http');
    expect(env.HTTP_X_FORWARDED_HOST).toBe('gw.example');
    expect(env.REQUEST_METHOD).toBe('GET');
    expect(env.PATH_INFO).toBe('/wsgi/env');
    // nothing else the gateway owns or strips, in any spelling
    const allowed = new Set(['HTTP_X_FORWARDED_FOR', 'HTTP_X_FORWARDED_PROTO', 'HTTP_X_FORWARDED_HOST']);
    const leaked = Object.keys(env).filter((k) => k.startsWith('HTTP_') && !allowed.has(k) && OWNED.includes(fold(k.slice(5))));
    expect(leaked).toEqual([]);
  });
});
