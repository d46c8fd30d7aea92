import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { startTestGateway, routesYaml, type TestGateway } from '../../test/support/gateway.js';
import { rawExchange } from '../../test/support/raw-http.js';
import { startRawUpstream, type RawUpstream } from '../../test/support/raw-upstream.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';
import { wsConnect } from '../../test/support/websocket.js';

// An upgrade request that announces a body is a desync attempt: the body cannot be sent
// before the upstream switches protocols, so an upstream that answers first and then waits
// for it reads the next request on that connection as the rest of the body. The gateway
// refuses such upgrades, never forwards framing headers on one, and never lets an upstream
// connection that carried an upgrade carry anything else.

let raw: RawUpstream;
let up: Upstream;
let t: TestGateway;
let port: number;
let origin: string;

beforeAll(async () => {
  raw = await startRawUpstream();
  up = await startUpstream('svc');
  // two routes on the same upstream origin: one for anyone, one behind a session
  const extra = `  - name: raw
    prefix: /raw
    upstream: ${raw.url}
    auth: none
    timeout: 2s
  - name: rawuser
    prefix: /rawuser
    upstream: ${raw.url}
    roles: [user]
    timeout: 2s
`;
  t = await startTestGateway({ redisUrl: inject('redisUrl'), routes: routesYaml({ public: up.url }, extra) });
  port = await t.listen();
  origin = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  await t?.close();
  await raw?.close();
  await up?.close();
});

beforeEach(() => raw.clear());

function upgradeHead(target: string, extra: string[]): string {
  return (
    `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra.map((h) => h + '\r\n').join('')}\r\n`
  );
}

function statusOf(response: string): number {
  return Number(response.split(' ')[1]);
}

const SMUGGLE = ['X-Smuggle', 'GET /internal/secret HTTP/1.1'] as [string, string];

describe('WebSocket upgrades with a body', () => {
  it('refuses an upgrade with Content-Length or Transfer-Encoding with 400 bad_request, before any upstream', async () => {
    for (const framing of [['Content-Length: 5'], ['Transfer-Encoding: chunked']]) {
      const body = framing[0]!.startsWith('Content') ? 'hello' : '5\r\nhello\r\n0\r\n\r\n';
      const res = await rawExchange(port, upgradeHead('/raw/ws/x', framing) + body);
      expect(statusOf(res), res).toBe(400);
      expect(JSON.parse(res.slice(res.indexOf('\r\n\r\n') + 4))).toEqual({ error: 'bad_request', message: expect.any(String) });
    }
    expect(raw.connections).toEqual([]);
  });

  it('cannot smuggle a request through an upgrade that a declined upstream left waiting for a body', async () => {
    // learn where the smuggled request line falls in the head the gateway writes upstream
    const probe = await wsConnect(port, '/raw/ws/room', [SMUGGLE]);
    expect(probe.status).toBe(101);
    probe.close();
    const probeBytes = raw.connections[0]!.bytes;
    const offset = probeBytes.indexOf(SMUGGLE[1]);
    expect(offset).toBeGreaterThan(0);
    raw.clear();

    // the attacker's upgrade announces exactly that many body bytes; the upstream declines it
    const attack = await rawExchange(port, upgradeHead('/raw/nope', [`Content-Length: ${offset}`]) + 'x'.repeat(offset));

    // the same upgrade again: its head must not complete the attacker's body
    const again = await wsConnect(port, '/raw/ws/room', [SMUGGLE]);
    again.close();
    expect(raw.paths).not.toContain('/internal/secret');
    for (const c of raw.connections) expect(c.requestLines).toHaveLength(1);
    expect(again.status, again.body).toBe(101);
    expect(statusOf(attack), attack).toBe(400);
  });

  it("never lets a victim's upgrade head, with its X-Session, become the body of an attacker's request", async () => {
    const attackerSaw = await rawExchange(port, upgradeHead('/raw/nope', ['Content-Length: 4000']) + 'x'.repeat(4000));

    const alice = await t.login('alice', ['user']);
    const victim = await wsConnect(port, '/rawuser/ws/room', [['Cookie', `sid=${alice}`], ['Origin', origin]]);
    try {
      // the victim's X-Session reached the upstream on the victim's own connection only
      const carriers = raw.connections.filter((c) => /\r\nx-session: /i.test(c.bytes));
      expect(carriers).toHaveLength(1);
      expect(carriers[0]!.requestLines).toEqual(['GET /rawuser/ws/room HTTP/1.1']);
      for (const c of raw.connections) expect(c.requestLines).toHaveLength(1);
      expect(attackerSaw).not.toMatch(/x-session/i);
      expect(victim.status, victim.body).toBe(101);
      expect(await victim.next()).toMatchObject({ text: 'hello' });
      victim.send('mine');
      expect(await victim.next()).toMatchObject({ text: 'echo:mine' });
    } finally {
      victim.close();
    }
    expect(statusOf(attackerSaw), attackerSaw).toBe(400);
  });

  it('closes the upstream connection of a declined upgrade: the next upgrade gets a fresh one, without framing headers', async () => {
    const declined = await wsConnect(port, '/raw/nope', [['Content-Length', '0'], ['Expect', '100-continue']]);
    expect(declined.status).toBe(404);
    expect(declined.body).toBe('not found');
    const next = await wsConnect(port, '/raw/ws/room');
    try {
      expect(next.status, next.body).toBe(101);
    } finally {
      next.close();
    }
    expect(raw.connections).toHaveLength(2);
    for (const c of raw.connections) {
      expect(c.requestLines).toHaveLength(1);
      expect(c.bytes).not.toMatch(/\r\n(content-length|transfer-encoding|expect):/i);
      expect(c.bytes).toMatch(/\r\nconnection: upgrade\r\n/i);
    }
  });
});
