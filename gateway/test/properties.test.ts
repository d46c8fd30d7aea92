import fc from 'fast-check';
import { jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { canonicalize } from '../src/routes/canonical-path.js';
import { startTestGateway, routesYaml, type TestGateway } from '../../test/support/gateway.js';
import { rawRequest } from '../../test/support/raw-http.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';

// Properties of the whole gateway over a real socket: searched with generated inputs rather
// than a list of known attacks.

const RUNS = Number(process.env.PROPERTY_RUNS ?? 300);

let up: Upstream;
let t: TestGateway;
let port: number;
let secret: Uint8Array;

beforeAll(async () => {
  up = await startUpstream('svc');
  t = await startTestGateway({ redisUrl: inject('redisUrl'), routes: routesYaml({ public: up.url }) });
  port = await t.listen();
  const set = JSON.parse(t.keysJson) as { keys: { k: string }[] };
  secret = Buffer.from(set.keys[0]!.k, 'base64url');
});

afterAll(async () => {
  await t?.close();
  await up?.close();
});

// path pieces that have broken proxies before: dot-segments plain and encoded, separators,
// encodings of the protected prefix, case changes, parameters and unicode
const PIECES = [
  'public', 'admin', 'api', 'orders', 'reports', 'Admin', 'ADMIN', '%61dmin', 'adm%69n', '.', '..', '%2e', '%2e%2e', '.%2e',
  '%2E.', '', '/', '//', '%2f', '%2F', '%5c', '\\', ';', '%3b', 'a;b', '%00', '%20', '%25', '%252e', 'x', '~', '%7e', 'é',
  '%C3%A9', '?', '#', '*', ':', '@', '%3F',
];

// pieces the gateway accepts: plain dot-segments and encoded unreserved letters resolve, the rest stay
const LEGAL = ['public', 'admin', 'orders', 'x', '.', '..', '%61dmin', 'adm%69n', '~', '%7e', '%C3%A9', '%20', '@', ':'];

const target = fc.oneof(
  // under a route that forwards, so the forwarded branch is reached on every run
  fc.tuple(fc.constantFrom('/public/', '/opt/', '/api/orders/'), fc.array(fc.constantFrom(...LEGAL), { maxLength: 6 })).map(([a, ps]) => a + ps.join('/')),
  fc.array(fc.constantFrom(...PIECES), { maxLength: 8 }).map((ps) => `/${ps.join('/')}`),
  fc.array(fc.constantFrom(...PIECES), { maxLength: 8 }).map((ps) => ps.join('')),
  fc.tuple(fc.constantFrom('/public/', '/opt/', '/'), fc.array(fc.constantFrom(...PIECES), { maxLength: 6 })).map(([a, ps]) => a + ps.join('/')),
);

/** The route a canonical path belongs to under routesYaml(). */
function routeOf(path: string): string | null {
  const prefixes: [string, string][] = [
    ['/api/orders', 'orders'],
    ['/reports', 'reports'],
    ['/public', 'public'],
    ['/admin', 'admin'],
    ['/auth', 'auth'],
    ['/opt', 'opt'],
  ];
  for (const [p, name] of prefixes) if (path === p || path.startsWith(`${p}/`)) return name;
  return null;
}

describe('request targets', () => {
  it('the upstream receives exactly the path the policy decided on, and protected routes are never reached without a session', async () => {
    const alice = await t.login('alice', ['user']);
    const seen = { refused: 0, forwarded: 0, denied: 0 };
    await fc.assert(
      fc.asyncProperty(target, fc.boolean(), async (tgt, withCookie) => {
        if (tgt.includes(' ') || tgt.includes('\r') || tgt.includes('\n') || tgt === '') return; // not a request line
        up.clear();
        const res = await rawRequest(port, { target: tgt, headers: withCookie ? [['Cookie', `sid=${alice}`]] : [] });
        const c = canonicalize(tgt);
        const forwarded = up.received;
        if (!c.ok) {
          // refused targets never reach anyone; Node itself may refuse some first
          expect(forwarded).toEqual([]);
          expect([400, 404, 505]).toContain(res.status);
          seen.refused++;
          return;
        }
        const route = routeOf(c.path);
        if (forwarded.length === 0) {
          seen.denied++;
          if (route === 'public' || route === 'opt') expect(res.status).toBeGreaterThanOrEqual(400);
          if (route === null) expect(res.status).toBe(404);
          return;
        }
        expect(forwarded).toHaveLength(1);
        seen.forwarded++;
        const got = forwarded[0]!.url;
        const expected = route === 'orders' ? c.path.replace(/^\/api\/orders/, '/orders') + c.query : c.path + c.query;
        expect(got).toBe(expected);
        // nothing reached a required route without a valid session with the role
        if (route === 'admin' || route === 'reports') throw new Error(`forwarded ${tgt} to ${route}`);
        if (route === 'orders') expect(withCookie).toBe(true);
      }),
      { numRuns: RUNS },
    );
    // the generator must reach every branch, or the property proves little
    expect(seen.refused).toBeGreaterThan(RUNS / 20);
    expect(seen.forwarded).toBeGreaterThan(RUNS / 20);
    expect(seen.denied).toBeGreaterThan(0);
  });
});

// every way a client might spell the identity header, hoping some framework folds it
const NAME = fc
  .tuple(fc.constantFrom('x', 'X'), fc.constantFrom('-', '_', '.'), fc.constantFrom('session', 'Session', 'SESSION', 'sEsSiOn'))
  .map(([x, sep, s]) => `${x}${sep}${s}`);

describe('identity headers', () => {
  it('no client-supplied identity header reaches an upstream, on any route', async () => {
    const alice = await t.login('alice', ['user']);
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(NAME, fc.constantFrom('forged', 'eyJhbGciOiJub25lIn0.e30.', 'x')), { minLength: 1, maxLength: 4 }),
        fc.constantFrom('/public/p', '/opt/p', '/api/orders/p'),
        fc.boolean(),
        fc.boolean(),
        async (forged, path, withCookie, listInConnection) => {
          up.clear();
          const headers: [string, string][] = forged.map(([k, v]) => [k, v]);
          if (withCookie) headers.push(['Cookie', `theme=1; sid=${alice}`]);
          if (listInConnection) headers.push(['Connection', `${forged[0]![0]}, keep-alive`]);
          const res = await rawRequest(port, { target: path, headers });
          if (res.status !== 200) {
            expect(path === '/api/orders/p' && !withCookie).toBe(true);
            expect(up.received).toEqual([]);
            return;
          }
          const rec = up.last();
          const ids = rec.rawHeaders.filter(([k]) => k.toLowerCase().replace(/[_.]/g, '-') === 'x-session');
          const forgedValues = new Set<string>(forged.map(([, v]) => v));
          for (const [, v] of ids) expect(forgedValues.has(v)).toBe(false);
          if (path === '/public/p' || !withCookie) {
            expect(ids).toEqual([]);
          } else {
            expect(ids).toHaveLength(1);
            const { payload } = await jwtVerify(ids[0]![1], secret, { issuer: 'sessiongate' });
            expect(payload.sub).toBe('alice');
          }
          expect(rec.rawHeaders.some(([, v]) => v.includes(alice))).toBe(false);
        },
      ),
      { numRuns: RUNS },
    );
  });
});
