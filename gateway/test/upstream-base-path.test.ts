import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { startTestGateway, routesYaml, type TestGateway } from '../../test/support/gateway.js';
import { rawRequest } from '../../test/support/raw-http.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';
import { startWsUpstream, wsConnect, type WsUpstream } from '../../test/support/websocket.js';

// An upstream URL with a base path (`http://svc/base`) puts every forwarded path under that
// base path once: after the route's prefix, or after what rewritePrefix made of it ('' strips
// the prefix). The same for plain requests and WebSocket upgrades.

let up: Upstream;
let ws: WsUpstream;
let t: TestGateway;
let port: number;

beforeAll(async () => {
  up = await startUpstream('svc');
  ws = await startWsUpstream();
  const extra = `  - name: based
    prefix: /based
    upstream: ${up.url}/base
    auth: none
  - name: stripped
    prefix: /stripped
    upstream: ${up.url}/base/
    rewritePrefix: ''
    auth: none
  - name: renamed
    prefix: /renamed
    upstream: ${up.url}/base
    rewritePrefix: /v2
    auth: none
  - name: wsbased
    prefix: /wsbased
    upstream: ${ws.url}/ws
    auth: none
  - name: wsstripped
    prefix: /wsstripped
    upstream: ${ws.url}/ws
    rewritePrefix: ''
    auth: none
`;
  t = await startTestGateway({ redisUrl: inject('redisUrl'), routes: routesYaml({ public: up.url }, extra) });
  port = await t.listen();
});

afterAll(async () => {
  await t?.close();
  await ws?.close();
  await up?.close();
});

beforeEach(() => {
  up.clear();
  ws.upgrades.length = 0;
});

async function forwardedPath(target: string): Promise<string> {
  const res = await rawRequest(port, { target });
  expect(res.status, res.body).toBe(200);
  return up.last().url;
}

async function upgradedPath(target: string): Promise<string> {
  const res = await wsConnect(port, target);
  res.close();
  expect(res.status, res.body).toBe(101);
  return ws.upgrades.at(-1)!.url;
}

describe('upstream base paths', () => {
  it('puts plain requests under the base path once', async () => {
    expect(await forwardedPath('/based/x?q=1')).toBe('/base/based/x?q=1');
    expect(await forwardedPath('/based')).toBe('/base/based');
    expect(await forwardedPath('/stripped/x/y?q=%2F')).toBe('/base/x/y?q=%2F');
    expect(await forwardedPath('/stripped')).toBe('/base/');
    expect(await forwardedPath('/renamed/7')).toBe('/base/v2/7');
  });

  it('puts WebSocket upgrades under the base path once', async () => {
    expect(await upgradedPath('/wsbased/room?x=1')).toBe('/ws/wsbased/room?x=1');
    expect(await upgradedPath('/wsstripped/room')).toBe('/ws/room');
  });
});
