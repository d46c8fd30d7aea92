import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { hashToken, mintToken } from '../src/session/record.js';
import { startTestGateway, routesYaml, type TestGateway } from '../../test/support/gateway.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';

// What the gateway does with stored values it cannot trust: corrupt, old-format, or holding
// values that would make an unsafe header. Never a crash, never forwarded: 401 and a log line.

let up: Upstream;
let t: TestGateway;
let logs = '';

beforeAll(async () => {
  up = await startUpstream('svc');
  const logStream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs += chunk.toString();
      cb();
    },
  });
  t = await startTestGateway({ redisUrl: inject('redisUrl'), routes: routesYaml({ public: up.url }), logStream });
});

afterAll(async () => {
  await t?.close();
  await up?.close();
});

const now = Date.now();
const valid = { v: 1, sid: 'S1', sub: 'alice', roles: ['user'], createdAt: now, absoluteExpiresAt: now + 3_600_000, idleTimeoutMs: 600_000, claims: {} };

const cases: [string, string][] = [
  ['not JSON', '{"v":1,'],
  ['an old format (no version)', JSON.stringify({ user: 'alice', roles: ['user'] })],
  ['a future version', JSON.stringify({ ...valid, v: 2 })],
  ['CR/LF in sub', JSON.stringify({ ...valid, sub: 'alice\r\nX-Injected: 1' })],
  ['a control character in a role', JSON.stringify({ ...valid, roles: ['user\u0000'] })],
  ['an oversize claim', JSON.stringify({ ...valid, claims: { name: 'x'.repeat(10_000) } })],
  ['a non-scalar claim', JSON.stringify({ ...valid, claims: { nested: { a: 1 } } })],
  ['roles not a list', JSON.stringify({ ...valid, roles: 'user' })],
];

describe('unusable session records', () => {
  it.each(cases)('%s: 401 on a required route, anonymous on optional, logged, never forwarded', async (what, raw) => {
    const token = mintToken();
    await t.redis.set(`${t.keyPrefix}s:${hashToken(token)}`, raw, 'PX', 60_000);
    up.clear();
    const res = await t.gw.app.inject({ url: '/api/orders/1', headers: { cookie: `sid=${token}` } });
    expect(res.statusCode, what).toBe(401);
    expect(res.json().error).toBe('unauthenticated');
    expect(up.received).toEqual([]);
    const opt = await t.gw.app.inject({ url: '/opt/1', headers: { cookie: `sid=${token}` } });
    expect(opt.statusCode).toBe(200);
    expect(up.last().headers['x-session']).toBeUndefined();
    expect(logs).toMatch(/unusable session record/);
    expect(logs).not.toContain(token);
  });

  it('a valid record next to them still works (the gateway did not crash)', async () => {
    const token = mintToken();
    await t.redis.set(`${t.keyPrefix}s:${hashToken(token)}`, JSON.stringify(valid), 'PX', 60_000);
    expect((await t.gw.app.inject({ url: '/api/orders/1', headers: { cookie: `sid=${token}` } })).statusCode).toBe(200);
  });

  it('a record past its absolute expiry is refused even while its key lives, and removed', async () => {
    const token = mintToken();
    const key = `${t.keyPrefix}s:${hashToken(token)}`;
    await t.redis.set(key, JSON.stringify({ ...valid, createdAt: now - 7_200_000, absoluteExpiresAt: Date.now() - 1 }), 'PX', 60_000);
    expect((await t.gw.app.inject({ url: '/api/orders/1', headers: { cookie: `sid=${token}` } })).statusCode).toBe(401);
    await new Promise((r) => setTimeout(r, 50));
    expect(await t.redis.exists(key)).toBe(0);
  });
});
