import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT, decodeProtectedHeader, decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { CLIENT_ASSERTION_TYPE, isWellFormedToken } from '@sessiongate/session';
import { newKeysJson, startTestAuth, type TestAuth } from '../../test/support/auth-service.js';
import { routesYaml, startTestGateway, type TestGateway } from '../../test/support/gateway.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';

// The per-IP login limit behind a load balancer: clients reach the gateway through a proxy
// the gateway trusts, and the gateway reaches the auth service from an address the auth
// service does not trust (as from another host). The auth service must still tell clients
// apart: by the address the gateway signed for it, which no client can forge.

const A = '127.0.0.2';
const B = '127.0.0.3';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** An edge proxy: forwards to `target`, naming the peer in X-Forwarded-For (as a load balancer does). */
async function startEdgeProxy(target: () => number): Promise<{ port: number; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const headers = { ...req.headers, 'x-forwarded-for': req.socket.remoteAddress ?? '' };
    const up = http.request({ host: '127.0.0.1', port: target(), method: req.method, path: req.url, headers, agent: false }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.rawHeaders);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A request from `from` (a loopback address of its own) to the edge proxy. */
function send(port: number, from: string, body: object, extra: Record<string, string> = {}): Promise<Reply> {
  const text = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        localAddress: from,
        agent: false,
        method: 'POST',
        path: '/auth/login',
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), ...extra },
      },
      (res) => {
        let b = '';
        res.on('data', (c: Buffer) => (b += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: b }));
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

let auth: TestAuth;
let gw: TestGateway;
let echoGw: TestGateway;
let echo: Upstream;
let edge: { port: number; close(): Promise<void> };
let target = 0;
let gwPort = 0;
let echoGwPort = 0;

/** A client assertion signed with the gateway's own key, as a client could never make one. */
async function assertion(ip: string, o: { exp?: number; typ?: string; keysJson?: string } = {}): Promise<string> {
  const jwk = (JSON.parse(o.keysJson ?? auth.keysJson) as { keys: { k: string; kid: string }[] }).keys[0]!;
  const iat = Math.floor(Date.now() / 1000);
  return new SignJWT({ ip })
    .setProtectedHeader({ alg: 'HS256', typ: o.typ ?? CLIENT_ASSERTION_TYPE, kid: jwk.kid })
    .setIssuer('sessiongate')
    .setAudience('auth')
    .setIssuedAt(iat)
    .setExpirationTime(o.exp ?? iat + 30)
    .sign(Buffer.from(jwk.k, 'base64url'));
}

beforeAll(async () => {
  auth = await startTestAuth({
    redisUrl: inject('redisUrl'),
    users: { vic: { password: 'vic-password-1', roles: ['user'] }, bea: { password: 'bea-password-1', roles: ['user'] } },
    // the gateway is not among the auth service's trusted proxies (it would be on another host)
    env: { SESSIONGATE_TRUSTED_PROXIES: '10.9.9.9/32', LOGIN_MAX_FAILURES_PER_ACCOUNT: '1000' },
  });
  await auth.svc.app.listen({ host: '127.0.0.1', port: 0 });
  const authUrl = `http://127.0.0.1:${(auth.svc.app.server.address() as AddressInfo).port}`;
  echo = await startUpstream('echo');
  const env = { SESSIONGATE_TRUSTED_PROXIES: '127.0.0.1/32' };
  gw = await startTestGateway({ redisUrl: inject('redisUrl'), routes: routesYaml({ auth: authUrl, public: echo.url }), keyPrefix: auth.keyPrefix, keysJson: auth.keysJson, env });
  echoGw = await startTestGateway({ redisUrl: inject('redisUrl'), routes: routesYaml({ public: echo.url }), keysJson: auth.keysJson, env });
  gwPort = await gw.listen();
  echoGwPort = await echoGw.listen();
  target = gwPort;
  edge = await startEdgeProxy(() => target);
});
afterAll(async () => {
  await edge?.close();
  await echoGw?.close();
  await gw?.close();
  await echo?.close();
  await auth?.close();
});

describe('the auth service tells clients apart behind a gateway it does not trust', () => {
  it("one client's failed logins lock out that client only; a forged client address gains nothing", { timeout: 180_000 }, async () => {
    target = gwPort;
    const max = auth.config.throttle.maxPerIp;
    for (let i = 0; i < max; i++) {
      const res = await send(edge.port, A, { username: 'vic', password: `wrong-${i}` });
      expect(res.status, `attempt ${i + 1}`).toBe(401);
    }
    expect((await send(edge.port, A, { username: 'vic', password: 'vic-password-1' })).status).toBe(429);

    // another client behind the same gateway still signs in
    const b = await send(edge.port, B, { username: 'bea', password: 'bea-password-1' });
    expect(b.status).toBe(204);
    expect(isWellFormedToken(/^sid=([^;]*)/.exec(String(b.headers['set-cookie']))?.[1] ?? '')).toBe(true);
    expect(await auth.redis.get(auth.keys.throttle('ip', A))).toBe(String(max));

    // the locked-out client claims B's address in the gateway's own header, in every
    // spelling, even signed with the right key: the gateway replaces it with its own
    const forged = await assertion(B);
    for (const name of ['X-SessionGate-Client', 'x_sessiongate_client', 'x.sessiongate.client', 'X_SESSIONGATE.CLIENT']) {
      const res = await send(edge.port, A, { username: 'bea', password: 'bea-password-1' }, { [name]: forged });
      expect(res.status, name).toBe(429);
    }
    // and X-Forwarded-For from the client is not believed either (the edge proxy overwrites it,
    // and the gateway trusts only the edge)
    expect(await auth.redis.get(auth.keys.throttle('ip', B))).toBe('0');
  });

  it('the gateway sends exactly one assertion, its own, naming the client', async () => {
    target = echoGwPort;
    echo.clear();
    const forged = await assertion(B);
    await send(edge.port, A, { username: 'x', password: 'y' }, { 'X-SessionGate-Client': forged, x_sessiongate_client: forged, 'x.sessiongate.client': forged });
    const rec = echo.last();
    const sent = rec.rawHeaders.filter(([k]) => k.toLowerCase().replace(/[_.]/g, '-') === 'x-sessiongate-client');
    expect(sent).toHaveLength(1);
    const token = sent[0]![1];
    expect(token).not.toBe(forged);
    expect(decodeProtectedHeader(token)).toMatchObject({ typ: CLIENT_ASSERTION_TYPE, alg: 'HS256' });
    const claims = decodeJwt(token);
    expect(claims).toMatchObject({ ip: A, aud: 'auth', iss: 'sessiongate' });
    expect(claims.exp! - claims.iat!).toBeLessThanOrEqual(60);
    // other routes never get one
    echo.clear();
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: edge.port, localAddress: A, agent: false, path: '/public/x', headers: { 'x-sessiongate-client': forged } }, (res) => {
        res.resume();
        res.on('end', resolve);
      });
      req.on('error', reject);
      req.end();
    });
    expect(echo.last().rawHeaders.filter(([k]) => k.toLowerCase().replace(/[_.]/g, '-') === 'x-sessiongate-client')).toEqual([]);
  });

  it('straight to the auth service, an assertion that is not the gateway’s is ignored', async () => {
    const direct = (header: string) =>
      auth.svc.app.inject({ method: 'POST', url: '/auth/login', remoteAddress: '127.0.0.1', headers: { 'x-sessiongate-client': header }, payload: { username: 'nobody', password: 'some-password' } });
    const counted = async (ip: string) => Number((await auth.redis.get(auth.keys.throttle('ip', ip))) ?? 0);
    const claimed = '192.0.2.44';
    const x = await auth.xSession({ sub: 'vic', sid: 'abc' });
    const bad = [
      await assertion(claimed, { keysJson: newKeysJson() }), // another key (same kid)
      await assertion(claimed, { exp: Math.floor(Date.now() / 1000) - 60 }), // expired
      await assertion(claimed, { typ: 'JWT' }), // not a client assertion
      x, // an X-Session
      'not-a-token',
    ];
    for (const token of bad) {
      const before = await counted('127.0.0.1');
      expect((await direct(token)).statusCode).toBe(401);
      expect(await counted('127.0.0.1')).toBe(before + 1);
    }
    expect(await counted(claimed)).toBe(0);
    // the gateway's own kind is believed
    expect((await direct(await assertion(claimed))).statusCode).toBe(401);
    expect(await counted(claimed)).toBe(1);
  });
});
