import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { jwtVerify } from 'jose';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { startTestGateway, routesYaml, type TestGateway } from '../../test/support/gateway.js';
import { freePort } from '../../test/support/redis-server.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';
import { acceptKey, startWsUpstream, wsConnect, type ReceivedUpgrade, type WsUpstream } from '../../test/support/websocket.js';

// WebSocket upgrades pass the same gate as plain requests, on a real listener: no session,
// no upgrade (and the upstream never hears of it); with one, the upstream's upgrade request
// carries a signed X-Session instead of the cookie, and frames flow both ways.

let ws: WsUpstream;
let up: Upstream;
/** Declines every upgrade with 403 and tries to set the session cookie. */
let refuser: http.Server;
let t: TestGateway;
let port: number;

beforeAll(async () => {
  ws = await startWsUpstream();
  up = await startUpstream('svc');
  refuser = http.createServer();
  refuser.on('upgrade', (_req, socket) => {
    socket.end(
      'HTTP/1.1 403 Forbidden\r\nSet-Cookie: sid=evil; Path=/\r\nContent-Type: text/plain\r\n' +
        'Connection: close, X-Internal\r\nX-Internal: secret\r\nContent-Length: 6\r\n\r\nno way',
    );
  });
  await new Promise<void>((r) => refuser.listen(0, '127.0.0.1', r));
  const deadPort = await freePort();
  const extra = `  - name: live
    prefix: /live
    upstream: ${ws.url}
    rewritePrefix: /socket
    roles: [user]
  - name: ticker
    prefix: /ticker
    upstream: ${ws.url}
    auth: none
    timeout: 300ms
  - name: declines
    prefix: /declines
    upstream: http://127.0.0.1:${(refuser.address() as AddressInfo).port}
    auth: none
  - name: gone
    prefix: /gone
    upstream: http://127.0.0.1:${deadPort}
    auth: none
`;
  t = await startTestGateway({ redisUrl: inject('redisUrl'), routes: routesYaml({ public: up.url }, extra) });
  port = await t.listen();
});

afterAll(async () => {
  await t?.close();
  await ws?.close();
  await up?.close();
  refuser?.closeAllConnections();
  refuser?.close();
});

beforeEach(() => {
  ws.upgrades.length = 0;
  ws.messages.length = 0;
});

function values(u: ReceivedUpgrade, name: string): string[] {
  return u.rawHeaders.filter(([k]) => k.toLowerCase() === name).map(([, v]) => v);
}

async function verify(jwt: string, audience: string) {
  const set = JSON.parse(t.keysJson) as { keys: { k: string }[] };
  return jwtVerify(jwt, Buffer.from(set.keys[0]!.k, 'base64url'), { issuer: 'sessiongate', audience, algorithms: ['HS256'] });
}

describe('WebSocket upgrades', () => {
  it('refuses an upgrade without a session with 401 JSON, and the upstream never sees it', async () => {
    const res = await wsConnect(port, '/live/room', [['X-Session', 'forged']]);
    expect(res.status).toBe(401);
    expect(res.headers['content-type']?.[0]).toMatch(/^application\/json/);
    expect(JSON.parse(res.body)).toEqual({ error: 'unauthenticated', message: expect.any(String) });
    // an unknown token is no better than none
    const unknown = await wsConnect(port, '/live/room', [['Cookie', `sid=${'A'.repeat(43)}`]]);
    expect(unknown.status).toBe(401);
    expect(ws.upgrades).toEqual([]);
  });

  it('refuses an upgrade with a session that lacks the role with 403', async () => {
    const guest = await t.login('guest', ['viewer']);
    const res = await wsConnect(port, '/live/room', [['Cookie', `sid=${guest}`]]);
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body).error).toBe('forbidden');
    expect(ws.upgrades).toEqual([]);
  });

  it('upgrades with a valid session: X-Session signed, cookie and forged headers gone, frames both ways', async () => {
    const alice = await t.login('alice', ['user']);
    const res = await wsConnect(port, '/live/room?x=1&y=%2F', [
      ['Cookie', `theme=dark; sid=${alice}`],
      // as a browser sends it: the gateway's own origin
      ['Origin', `http://127.0.0.1:${port}`],
      ['X-Session', 'forged'],
      ['X_Session', 'forged2'],
    ]);
    try {
      expect(res.status).toBe(101);
      expect(res.headers['sec-websocket-accept']).toEqual([acceptKey(res.key)]);

      expect(ws.upgrades).toHaveLength(1);
      const u = ws.upgrades[0]!;
      // the canonical path, rewritten like plain requests; the query as sent
      expect(u.url).toBe('/socket/room?x=1&y=%2F');
      expect(values(u, 'cookie')).toEqual(['theme=dark']);
      expect(u.rawHeaders.some(([, v]) => v.includes(alice))).toBe(false);
      const ids = u.rawHeaders.filter(([k]) => k.toLowerCase().replace(/[_.]/g, '-') === 'x-session');
      expect(ids).toHaveLength(1);
      const { payload } = await verify(ids[0]![1], 'live');
      expect(payload).toMatchObject({ sub: 'alice', roles: ['user'], aud: 'live' });

      // upstream → client (its greeting), then client → upstream → client
      expect(await res.next()).toMatchObject({ opcode: 1, masked: false, text: 'hello' });
      res.send('ping 1');
      expect(await res.next()).toMatchObject({ opcode: 1, text: 'echo:ping 1' });
      res.send('ünïcødé 🔐');
      expect(await res.next()).toMatchObject({ text: 'echo:ünïcødé 🔐' });
      expect(ws.messages).toEqual(['ping 1', 'ünïcødé 🔐']);
    } finally {
      res.close();
    }
  });

  it('upgrades on an auth: none route without looking at the session or sending X-Session', async () => {
    const alice = await t.login('alice', ['user']);
    const res = await wsConnect(port, '/ticker', [['Cookie', `sid=${alice}`], ['X-Session', 'forged']]);
    try {
      expect(res.status).toBe(101);
      const u = ws.upgrades[0]!;
      expect(values(u, 'x-session')).toEqual([]);
      expect(values(u, 'cookie')).toEqual([]);
      expect(await res.next()).toMatchObject({ text: 'hello' });
    } finally {
      res.close();
    }
  });

  it('answers 400 to an upgrade whose path is not canonical, before any upstream', async () => {
    const alice = await t.login('alice', ['user']);
    const res = await wsConnect(port, '/live/%2e%2e/admin', [['Cookie', `sid=${alice}`]]);
    expect(res.status).toBe(400);
    expect(JSON.parse(res.body).error).toBe('bad_request');
    expect(ws.upgrades).toEqual([]);
  });

  it('keeps an idle WebSocket open past the route timeout (it bounds the handshake, not the conversation)', async () => {
    const res = await wsConnect(port, '/ticker');
    try {
      expect(res.status).toBe(101);
      expect(await res.next()).toMatchObject({ text: 'hello' });
      // the ticker route's timeout is 300ms: stay silent for longer
      await new Promise((r) => setTimeout(r, 800));
      res.send('still there?');
      expect(await res.next()).toMatchObject({ text: 'echo:still there?' });
    } finally {
      res.close();
    }
  });

  it('relays an upstream that declines the upgrade, without its cookies or hop-by-hop headers', async () => {
    const res = await wsConnect(port, '/declines/x');
    expect(res.status).toBe(403);
    expect(res.body).toBe('no way');
    expect(res.headers['set-cookie']).toBeUndefined();
    expect(res.headers['x-internal']).toBeUndefined();
    // one framing header only: no Transfer-Encoding beside Content-Length
    expect(res.headers['transfer-encoding']).toBeUndefined();
    expect(res.headers['content-length']).toEqual(['6']);
    expect(res.headers.connection).toEqual(['close']);
  });

  it('answers 502 upstream_unavailable JSON when the WebSocket upstream is not there', async () => {
    const res = await wsConnect(port, '/gone/x');
    expect(res.status).toBe(502);
    expect(JSON.parse(res.body)).toEqual({ error: 'upstream_unavailable', message: expect.any(String) });
    expect(res.body).not.toMatch(/ECONN|127\.0\.0\.1/);
  });
});
