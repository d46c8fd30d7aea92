import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { startTestGateway, routesYaml, type TestGateway } from '../../test/support/gateway.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';
import { startWsUpstream, wsConnect, type WsUpstream } from '../../test/support/websocket.js';

// A page on any site can open a WebSocket to the gateway, and the browser sends the user's
// cookies with it (cross-site WebSocket hijacking). So an upgrade that carries the session
// cookie passes the same origin check as a cookie-authenticated write, on routes with csrf
// on: the browser's Origin must be the gateway's own, or one configured.

let ws: WsUpstream;
let up: Upstream;
let own: TestGateway;
let configured: TestGateway;
let ownPort: number;
let configuredPort: number;

const EVIL = 'https://evil.example';
const APP = 'https://app.example.com';

beforeAll(async () => {
  ws = await startWsUpstream();
  up = await startUpstream('svc');
  const extra = `  - name: live
    prefix: /live
    upstream: ${ws.url}
    roles: [user]
  - name: feed
    prefix: /feed
    upstream: ${ws.url}
    auth: optional
  - name: nocsrf
    prefix: /nocsrf
    upstream: ${ws.url}
    roles: [user]
    csrf: false
`;
  const redisUrl = inject('redisUrl');
  own = await startTestGateway({ redisUrl, routes: routesYaml({ public: up.url }, extra) });
  ownPort = await own.listen();
  configured = await startTestGateway({
    redisUrl,
    routes: routesYaml({ public: up.url }, extra),
    keyPrefix: own.keyPrefix,
    env: { SESSIONGATE_ALLOWED_ORIGINS: APP },
  });
  configuredPort = await configured.listen();
});

afterAll(async () => {
  await configured?.close();
  await own?.close();
  await ws?.close();
  await up?.close();
});

beforeEach(() => {
  ws.upgrades.length = 0;
});

async function opens(port: number, target: string, headers: [string, string][]): Promise<number> {
  const res = await wsConnect(port, target, headers);
  try {
    if (res.status === 101) expect(await res.next()).toMatchObject({ text: 'hello' });
    return res.status;
  } finally {
    res.close();
  }
}

describe('WebSocket upgrades and the origin check', () => {
  it('refuses a cross-site upgrade carrying the session cookie with 403 csrf_rejected, before any upstream', async () => {
    const alice = await own.login('alice', ['user']);
    const res = await wsConnect(ownPort, '/live/room', [['Cookie', `sid=${alice}`], ['Origin', EVIL]]);
    expect(res.status).toBe(403);
    expect(res.headers['content-type']?.[0]).toMatch(/^application\/json/);
    expect(JSON.parse(res.body)).toEqual({ error: 'csrf_rejected', message: expect.any(String) });
    // the session is not enough on an auth: optional route either
    const optional = await wsConnect(ownPort, '/feed', [['Cookie', `sid=${alice}`], ['Origin', EVIL]]);
    expect(optional.status).toBe(403);
    // no Origin and no Sec-Fetch-Site: no evidence, refused as a write would be
    const bare = await wsConnect(ownPort, '/live/room', [['Cookie', `sid=${alice}`]]);
    expect(bare.status).toBe(403);
    expect(JSON.parse(bare.body).error).toBe('csrf_rejected');
    expect(ws.upgrades).toEqual([]);
  });

  it("admits the gateway's own origin and a same-origin fetch", async () => {
    const alice = await own.login('alice', ['user']);
    expect(await opens(ownPort, '/live/room', [['Cookie', `sid=${alice}`], ['Origin', `http://127.0.0.1:${ownPort}`]])).toBe(101);
    expect(await opens(ownPort, '/live/room', [['Cookie', `sid=${alice}`], ['Sec-Fetch-Site', 'same-origin']])).toBe(101);
    expect(ws.upgrades).toHaveLength(2);
  });

  it('admits a configured origin, and then only the configured ones', async () => {
    const alice = await configured.login('alice', ['user']);
    expect(await opens(configuredPort, '/live/room', [['Cookie', `sid=${alice}`], ['Origin', APP]])).toBe(101);
    expect(await opens(configuredPort, '/live/room', [['Cookie', `sid=${alice}`], ['Origin', EVIL]])).toBe(403);
    expect(ws.upgrades).toHaveLength(1);
  });

  it('lets any origin through without a session cookie, or on a route with csrf off', async () => {
    // nothing of the user's to hijack: the upstream gets no X-Session
    expect(await opens(ownPort, '/feed', [['Origin', EVIL]])).toBe(101);
    expect(ws.upgrades[0]!.headers['x-session']).toBeUndefined();
    const alice = await own.login('alice', ['user']);
    expect(await opens(ownPort, '/nocsrf/room', [['Cookie', `sid=${alice}`], ['Origin', EVIL]])).toBe(101);
    expect(ws.upgrades).toHaveLength(2);
  });
});
