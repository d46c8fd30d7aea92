import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caddyUnavailable, caddyVersion, startCaddy } from './support/caddy.js';
import type { EdgeProxy } from './support/edge-proxy.js';
import {
  ANSWER_HEADER,
  AUTHZ_PATH,
  GRANTED_SESSION,
  LOGIN_LOCATION,
  PROBE_HEADER,
  startRecorder,
  type Recorder,
} from './support/forward-auth-recorder.js';
import { nginxUnavailable, nginxVersion, startNginx } from './support/nginx.js';
import { rawRequest, type RawResponse } from './support/raw-http.js';

// What real nginx and real Caddy, running the shipped deploy/forward-auth configs, report to
// the authorization endpoint and forward to the app. The endpoint decides on the URI it is
// told; this table is why it must refuse every reported URI that is not already canonical
// (docs/forward-auth.md, "Which path is decided on"). A proxy upgrade that changes a row
// fails here.

const LONG_OK = `/l/${'a'.repeat(6000)}`;
const LONG_OVER_8K = `/l/${'a'.repeat(9000)}`;

/** The proxy refused the request itself, before asking anyone. */
type Refused = { refused: number };
/** 200: the endpoint was told `reported`, the app received `forwarded`. */
type Passed = { reported: string; forwarded: string };
type Outcome = Refused | Passed;
const same = (t: string): Passed => ({ reported: t, forwarded: t });

// target sent on the socket → [nginx (auth_request), Caddy (forward_auth)]
const TABLE: [string, Outcome, Outcome][] = [
  ['/public/x', same('/public/x'), same('/public/x')],
  ['/public/../admin', same('/public/../admin'), same('/public/../admin')],
  ['/public/%2e%2e/admin', same('/public/%2e%2e/admin'), same('/public/%2e%2e/admin')],
  ['/public/%2E%2E/admin', same('/public/%2E%2E/admin'), same('/public/%2E%2E/admin')],
  ['/public/..%2fadmin', same('/public/..%2fadmin'), same('/public/..%2fadmin')],
  ['/admin%2fx', same('/admin%2fx'), same('/admin%2fx')],
  ['/admin%2Fx', same('/admin%2Fx'), same('/admin%2Fx')],
  ['/a//b', same('/a//b'), same('/a//b')],
  ['//admin', same('//admin'), same('//admin')],
  ['/a/./b', same('/a/./b'), same('/a/./b')],
  ['/a/b/..', same('/a/b/..'), same('/a/b/..')],
  ['/../admin', { refused: 400 }, same('/../admin')],
  ['/admin;x', same('/admin;x'), same('/admin;x')],
  ['/a;b/c', same('/a;b/c'), same('/a;b/c')],
  ['/public\\..\\admin', same('/public\\..\\admin'), same('/public%5C..%5Cadmin')],
  ['/admin%5cx', same('/admin%5cx'), same('/admin%5cx')],
  ['/a?b=1&next=/x', same('/a?b=1&next=/x'), same('/a?b=1&next=/x')],
  ['/a?', same('/a?'), same('/a?')],
  ['/a%3fb', same('/a%3fb'), same('/a%3fb')],
  ['/a?b/../c', same('/a?b/../c'), same('/a?b/../c')],
  ['/%41dmin', same('/%41dmin'), same('/%41dmin')],
  ['/caf%c3%a9', same('/caf%c3%a9'), same('/caf%c3%a9')],
  ['/a#frag', same('/a#frag'), same('/a%23frag')],
  ['/a%00b', { refused: 400 }, same('/a%00b')],
  ['/a%20b', same('/a%20b'), same('/a%20b')],
  // the sign-in location is not checked: a climb out of it must not dodge the check
  ['/auth/../admin', same('/auth/../admin'), same('/auth/../admin')],
  ['/auth/%2e%2e/admin', same('/auth/%2e%2e/admin'), same('/auth/%2e%2e/admin')],
  ['/_sessiongate/../admin', same('/_sessiongate/../admin'), same('/_sessiongate/../admin')],
  [LONG_OK, same(LONG_OK), same(LONG_OK)],
  [LONG_OVER_8K, { refused: 414 }, same(LONG_OVER_8K)],
];

interface ProxyCase {
  name: string;
  unavailable: string | null;
  version: () => string;
  start: (o: { sessiongate: string; app: string }) => Promise<EdgeProxy>;
  column: 1 | 2;
  /** The header that carries the original URI to the endpoint. */
  uriHeader: string;
}

const CASES: ProxyCase[] = [
  { name: 'nginx', unavailable: nginxUnavailable(), version: nginxVersion, start: startNginx, column: 1, uriHeader: 'x-original-uri' },
  { name: 'Caddy', unavailable: caddyUnavailable(), version: caddyVersion, start: startCaddy, column: 2, uriHeader: 'x-forwarded-uri' },
];

const short = (t: string) => (t.length > 40 ? `${t.slice(0, 12)}…(${t.length} chars)` : t);

for (const c of CASES) {
  if (c.unavailable) console.warn(`test/forward-auth-proxies.test.ts: ${c.name} skipped: ${c.unavailable}`);

  describe(`${c.name} with the shipped forward-auth config${c.unavailable ? ` (skipped: ${c.unavailable})` : ''}`, () => {
    let rec: Recorder;
    let proxy: EdgeProxy;
    let n = 0;

    beforeAll(async () => {
      if (c.unavailable) return;
      rec = await startRecorder();
      proxy = await c.start({ sessiongate: rec.address, app: rec.address });
    });
    afterAll(async () => {
      await proxy?.stop();
      await rec?.close();
    });

    async function send(o: { target: string; method?: string; headers?: [string, string][]; body?: string }) {
      const id = `${c.name}-${n++}`;
      const res = await rawRequest(proxy.port, { ...o, headers: [[PROBE_HEADER, id], ...(o.headers ?? [])] });
      return { res, ...rec.probe(id) };
    }

    it(`reports to the endpoint exactly what it forwards (${TABLE.length} path tricks)`, async ({ skip }) => {
      skip(Boolean(c.unavailable), c.unavailable ?? '');
      const seen: [string, Outcome][] = [];
      for (const row of TABLE) {
        const { res, authz, app } = await send({ target: row[0], headers: [['Cookie', 'sid=abc; theme=dark']] });
        let outcome: Outcome;
        if (res.status === 200 && authz.length === 1 && app.length === 1) {
          // the endpoint's own target stays fixed whatever the client sent (Caddy keeps a bare '?')
          expect(authz[0]!.target.replace(/\?$/, ''), `${c.name} ${short(row[0])}: endpoint target`).toBe(AUTHZ_PATH);
          outcome = { reported: authz[0]!.headers[c.uriHeader] ?? '(none)', forwarded: app[0]!.target };
        } else {
          expect(authz.length + app.length, `${c.name} ${short(row[0])}: status ${res.status} after a request went through`).toBe(0);
          outcome = { refused: res.status };
        }
        seen.push([row[0], outcome]);
      }
      const expected = TABLE.map((row) => [row[0], row[c.column]]);
      const view = (rows: [string, Outcome][] | (string | Outcome)[][]) => rows.map(([t, o]) => `${short(t as string)} → ${JSON.stringify(o, (_k, v) => (typeof v === 'string' ? short(v) : v))}`);
      expect(view(seen), `${c.name} ${c.version()} changed what it reports or forwards`).toEqual(view(expected));
    });

    it('a client cannot choose X-Session, and the session cookie never reaches the app', async ({ skip }) => {
      skip(Boolean(c.unavailable), c.unavailable ?? '');
      const both = await send({ target: '/x', headers: [['Cookie', 'theme=dark; sid=secret-token; lang=en'], ['X-Session', 'forged'], ['X-Sessiongate-Cookie', 'sid=forged']] });
      expect(both.res.status).toBe(200);
      expect(both.authz[0]!.headers.cookie).toBe('theme=dark; sid=secret-token; lang=en');
      expect(both.app[0]!.headers['x-session']).toBe(GRANTED_SESSION);
      expect(both.app[0]!.headers.cookie).toBe('theme=dark; lang=en');
      expect(JSON.stringify(both.app[0]!.headers)).not.toContain('secret-token');
      expect(JSON.stringify(both.app[0]!.headers)).not.toContain('forged');

      // only the session cookie: the app gets no Cookie at all (not an empty or a template value)
      const only = await send({ target: '/x', headers: [['Cookie', 'sid=secret-token']] });
      expect(only.res.status).toBe(200);
      expect(only.app[0]!.headers).not.toHaveProperty('cookie');
      expect(only.app[0]!.headers['x-session']).toBe(GRANTED_SESSION);
      expect(JSON.stringify(only.app[0]!.headers)).not.toContain('secret-token');
    });

    it('tells the endpoint the method, host and original URI, without the body', async ({ skip }) => {
      skip(Boolean(c.unavailable), c.unavailable ?? '');
      const host = `127.0.0.1:${proxy.port}`;
      const { res, authz, app } = await send({ target: '/orders/7?x=1', method: 'POST', headers: [['Host', host], ['Content-Type', 'application/json']], body: '{"big":"body"}' });
      expect(res.status).toBe(200);
      expect(authz).toHaveLength(1);
      const h = authz[0]!.headers;
      if (c.name === 'nginx') {
        // $server_name: the site's own name, whatever Host the client sent
        expect([h['x-original-method'], h['x-original-uri'], h.host]).toEqual(['POST', '/orders/7?x=1', 'app.example.com']);
      } else {
        expect([h['x-forwarded-method'], h['x-forwarded-uri'], h['x-forwarded-host'], h['x-forwarded-proto']]).toEqual(['POST', '/orders/7?x=1', host, 'http']);
      }
      // the subrequest is a GET without the body: the method travels in a header only
      expect(authz[0]!.method).toBe('GET');
      expect(h['content-length'] ?? '0').toBe('0');
      expect(app[0]!.method).toBe('POST');
      expect(app[0]!.target).toBe('/orders/7?x=1');
    });

    it('passes refusals on: what each status of the endpoint becomes for the client', async ({ skip }) => {
      skip(Boolean(c.unavailable), c.unavailable ?? '');
      const answer = async (status: number, accept: string): Promise<{ res: RawResponse; app: number }> => {
        const r = await send({ target: '/app/page?a=1', headers: [[ANSWER_HEADER, String(status)], ['Accept', accept]] });
        return { res: r.res, app: r.app.length };
      };
      const html = 'text/html,application/xhtml+xml';
      const json = 'application/json';
      const row = async (status: number, accept: string) => {
        const { res, app } = await answer(status, accept);
        return { status: res.status, location: res.headers.location?.[0]?.replace(/^http:\/\/[^/]+/, '') ?? null, json: /^\{/.test(res.body) ? res.json().error : null, app };
      };
      const got = {
        '401 browser': await row(401, html),
        '401 api': await row(401, json),
        '403': await row(403, json),
        '302': await row(302, html),
        '400': await row(400, json),
        '503': await row(503, json),
      };
      if (c.name === 'nginx') {
        expect(got).toEqual({
          // error_page 401 = @sessiongate_login
          '401 browser': { status: 302, location: '/auth/login?next=/app/page?a=1', json: null, app: 0 },
          '401 api': { status: 401, location: null, json: 'unauthenticated', app: 0 },
          '403': { status: 403, location: null, json: null, app: 0 },
          // auth_request accepts only 2xx, 401 and 403: anything else is its own 500
          '302': { status: 500, location: null, json: null, app: 0 },
          '400': { status: 500, location: null, json: null, app: 0 },
          '503': { status: 500, location: null, json: null, app: 0 },
        });
      } else {
        // forward_auth hands any non-2xx answer to the client as it is
        expect(got).toEqual({
          '401 browser': { status: 401, location: null, json: 'status_401', app: 0 },
          '401 api': { status: 401, location: null, json: 'status_401', app: 0 },
          '403': { status: 403, location: null, json: 'status_403', app: 0 },
          '302': { status: 302, location: LOGIN_LOCATION, json: 'status_302', app: 0 },
          '400': { status: 400, location: null, json: 'status_400', app: 0 },
          '503': { status: 503, location: null, json: 'status_503', app: 0 },
        });
      }
    });

    it('never lets a client reach the endpoint through the site', async ({ skip }) => {
      skip(Boolean(c.unavailable), c.unavailable ?? '');
      for (const target of [AUTHZ_PATH, `${AUTHZ_PATH}?x=1`, `${AUTHZ_PATH}/x`, '/_sessiongate/', '/auth/../_sessiongate/authz', '/x/%2e%2e/_sessiongate/authz']) {
        const { res, authz, app } = await send({ target, headers: [['X-Original-URI', '/public'], ['X-Forwarded-Uri', '/public']] });
        expect({ target, status: res.status, requests: authz.length + app.length }).toEqual({ target, status: 404, requests: 0 });
      }
    });
  });
}
