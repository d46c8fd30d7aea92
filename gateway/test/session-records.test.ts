import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createHash, randomBytes } from 'node:crypto';
import { mintToken, serializeRecord, sessionRef } from '@sessiongate/session';
import { startTestGateway, routesYaml, type TestGateway } from '../../test/support/gateway.js';
import { freePort } from '../../test/support/redis-server.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';

// What the gateway does with stored values it cannot trust: corrupt, old-format, or holding
// values that would make an unsafe header. Never a crash, never forwarded: 401 and a log line.

let up: Upstream;
let t: TestGateway;
let logs = '';
/** The gateway's session data endpoint, on its own listener. */
let dataUrl = '';

/** A route whose upstream keeps data in the session (routes.yaml sessionData). */
const SHOP_ROUTE = (url: string) => `  - name: shop
    prefix: /shop
    upstream: ${url}
    roles: [user]
    sessionData: { namespace: cart }
`;

beforeAll(async () => {
  up = await startUpstream('svc');
  const logStream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs += chunk.toString();
      cb();
    },
  });
  t = await startTestGateway({
    redisUrl: inject('redisUrl'),
    routes: routesYaml({ public: up.url }, SHOP_ROUTE(up.url)),
    env: { SESSION_DATA_PORT: String(await freePort()) },
    logStream,
  });
  dataUrl = `${await t.gw.sessionData!.listen({ port: 0, host: '127.0.0.1' })}/_sessiongate/session-data`;
});

afterAll(async () => {
  await t?.close();
  await up?.close();
});

const now = Date.now();
const valid = { v: 1, sid: 'S1', sub: 'alice', roles: ['user'], createdAt: now, absoluteExpiresAt: now + 3_600_000, idleTimeoutMs: 600_000, claims: {} };

/** A new token for alice, its session key, and `valid` as stored under it. */
function arrange(): { token: string; key: string; record: typeof valid } {
  const token = mintToken('alice');
  const ref = sessionRef(token);
  return { token, key: `${t.keyPrefix}s:{${ref.tag}}${ref.sid}`, record: { ...valid, sid: ref.sid } };
}

/** `valid` in the format written now (version 2, the sid in the key only). */
const compact = serializeRecord({ ...valid, v: 2 });

const cases: [string, string][] = [
  ['not JSON', '{"v":1,'],
  ['an old format (no version)', JSON.stringify({ user: 'alice', roles: ['user'] })],
  ['a future version', JSON.stringify({ ...valid, v: 2 })],
  ['CR/LF in sub', JSON.stringify({ ...valid, sub: 'alice\r\nX-Injected: 1' })],
  ['a control character in a role', JSON.stringify({ ...valid, roles: ['user\u0000'] })],
  ['an oversize claim', JSON.stringify({ ...valid, claims: { name: 'x'.repeat(10_000) } })],
  ['a non-scalar claim', JSON.stringify({ ...valid, claims: { nested: { a: 1 } } })],
  ['roles not a list', JSON.stringify({ ...valid, roles: 'user' })],
  // a revocation names the sid: a record under another session's key would not be reached
  ['a record of another sid', JSON.stringify(valid)],
  // the compact format (version 2)
  ['a compact record of a future version', `3:${JSON.stringify(['alice', ['user'], now, 3_600_000, 600_000])}`],
  ['a compact record cut short', '2:["alice",["user"],'],
  ['a compact record with CR/LF in sub', `2:${JSON.stringify(['alice\r\nX-Injected: 1', ['user'], now, 3_600_000, 600_000])}`],
  ['a compact record missing its timeouts', `2:${JSON.stringify(['alice', ['user'], now])}`],
  // services' data after the identity: refused whole, never read in part
  ['a data part that is not JSON', `${compact}\n{"cart":`],
  ['an empty data part', `${compact}\n`],
  ['a data part that is a list', `${compact}\n[{"id":1}]`],
  ['a data namespace with a nested value', `${compact}\n${JSON.stringify({ cart: { id: { deep: 1 } } })}`],
  ['a data value with CR/LF', `${compact}\n{"cart":{"id":"a\\r\\nX-Injected: 1"}}`],
  ['a bad data namespace name', `${compact}\n${JSON.stringify({ 'Cart!': { id: 1 } })}`],
  ['a second data part', `${compact}\n{"cart":{"id":1}}\n{"cart":{"id":2}}`],
];

describe('unusable session records', () => {
  it.each(cases)('%s: 401 on a required route, anonymous on optional, logged, never forwarded', async (what, raw) => {
    const { token, key, record } = arrange();
    // each case stands on its own fault: the sid matches its key unless that is the fault
    const value = what.includes('another sid') || !raw.includes('"sid":"S1"') ? raw : raw.replace('"sid":"S1"', `"sid":"${record.sid}"`);
    await t.redis.set(key, value, 'PX', 60_000);
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
    const { token, key, record } = arrange();
    await t.redis.set(key, JSON.stringify(record), 'PX', 60_000);
    expect((await t.gw.app.inject({ url: '/api/orders/1', headers: { cookie: `sid=${token}` } })).statusCode).toBe(200);
  });

  it('a valid record with a well-formed data part works: the data part is what the cases above break', async () => {
    const { token, key } = arrange();
    await t.redis.set(key, `${compact}\n{"cart":{"id":"c-1"}}`, 'PX', 60_000);
    expect((await t.gw.app.inject({ url: '/api/orders/1', headers: { cookie: `sid=${token}` } })).statusCode).toBe(200);
  });

  it('a record past its absolute expiry is refused even while its key lives, and removed', async () => {
    const { token, key, record } = arrange();
    await t.redis.set(key, JSON.stringify({ ...record, createdAt: now - 7_200_000, absoluteExpiresAt: Date.now() - 1 }), 'PX', 60_000);
    expect((await t.gw.app.inject({ url: '/api/orders/1', headers: { cookie: `sid=${token}` } })).statusCode).toBe(401);
    await new Promise((r) => setTimeout(r, 50));
    expect(await t.redis.exists(key)).toBe(0);
  });
});

describe('a session of the format before slot tags (after an upgrade)', () => {
  it('is refused with 401 and one warning, never looked up, and nothing breaks', async () => {
    // the earlier layout: a 43-character token, its record under the hex SHA-256 of it
    const token = randomBytes(32).toString('base64url');
    const key = `${t.keyPrefix}s:${createHash('sha256').update(token).digest('hex')}`;
    await t.redis.set(key, JSON.stringify({ ...valid, sid: randomBytes(16).toString('base64url') }), 'PX', 60_000);
    const before = logs.length;
    for (let i = 0; i < 3; i++) {
      const res = await t.gw.app.inject({ url: '/api/orders/1', headers: { cookie: `sid=${token}` } });
      expect(res.statusCode).toBe(401);
      expect(res.json().error).toBe('unauthenticated');
    }
    const lines = logs.slice(before).split('\n').filter((l) => l.includes('earlier format'));
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({ level: 40, tokens: 1 });
    expect(logs).not.toContain(token);
    // a session of the current format still works next to it
    const { token: current, key: currentKey, record } = arrange();
    await t.redis.set(currentKey, JSON.stringify(record), 'PX', 60_000);
    expect((await t.gw.app.inject({ url: '/api/orders/1', headers: { cookie: `sid=${current}` } })).statusCode).toBe(200);
  });
});

describe('records of earlier formats still in Redis, and session data', () => {
  /** The X-Session the gateway sends the shop upstream on a request of this session. */
  async function shopRequest(token: string): Promise<{ status: number; xSession: string | undefined }> {
    up.clear();
    const res = await t.gw.app.inject({ url: '/shop/cart', headers: { cookie: `sid=${token}` } });
    return { status: res.statusCode, xSession: res.statusCode === 200 ? (up.last().headers['x-session'] as string) : undefined };
  }

  async function write(xSession: string, body: unknown): Promise<{ status: number; body: { error?: string; namespace?: string } }> {
    const r = await fetch(dataUrl, { method: 'PATCH', headers: { 'content-type': 'application/json', 'x-session': xSession }, body: JSON.stringify(body) });
    return { status: r.status, body: (await r.json()) as { error?: string } };
  }

  const earlier: [string, (record: typeof valid) => string][] = [['version 1 (a JSON object with the sid)', (r) => JSON.stringify(r)]];

  it.each(earlier)('%s: read as before; a data write is refused with 409 and leaves the session as it was', async (_what, format) => {
    const { token, key, record } = arrange();
    const stored = format(record);
    await t.redis.set(key, stored, 'PX', 60_000);
    const first = await shopRequest(token);
    expect(first.status).toBe(200);
    const claims = JSON.parse(Buffer.from(first.xSession!.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
    expect(claims).toMatchObject({ sub: 'alice', sid: record.sid, aud: 'shop', roles: ['user'] });

    const answer = await write(first.xSession!, { id: 'c-1' });
    expect(answer).toEqual({ status: 409, body: expect.objectContaining({ error: 'session_data_no_session' }) });
    // untouched, and still a session: the user goes on until the next sign-in brings the new format
    expect(await t.redis.get(key)).toBe(stored);
    expect(await t.redis.pttl(key)).toBeGreaterThan(0);
    const again = await shopRequest(token);
    expect(again.status).toBe(200);
    expect(JSON.parse(Buffer.from(again.xSession!.split('.')[1]!, 'base64url').toString('utf8'))).not.toHaveProperty('sg_data');
    expect((await t.gw.app.inject({ url: '/api/orders/1', headers: { cookie: `sid=${token}` } })).statusCode).toBe(200);
  });

  it('the early version 2 form (`2:` and an array): read, and takes data keeping its form', async () => {
    const { token, key, record } = arrange();
    const stored = `2:${JSON.stringify([record.sub, 'user', record.createdAt, 3600, 600, { email: 'alice@example.com' }])}`;
    await t.redis.set(key, stored, 'PX', 60_000);
    const { status, xSession } = await shopRequest(token);
    expect(status).toBe(200);
    expect(await write(xSession!, { id: 'c-2' })).toEqual({ status: 200, body: expect.objectContaining({ namespace: 'cart' }) });
    expect(await t.redis.get(key)).toBe(`${stored}\n{"cart":{"id":"c-2"}}`);
    const again = await shopRequest(token);
    expect(JSON.parse(Buffer.from(again.xSession!.split('.')[1]!, 'base64url').toString('utf8'))).toMatchObject({ sg_data: { cart: { id: 'c-2' } } });
  });

  it('the same write to a session of the current format is stored (so the refusals above are about the format)', async () => {
    const { token, key } = arrange();
    await t.redis.set(key, compact, 'PX', 60_000);
    const { status, xSession } = await shopRequest(token);
    expect(status).toBe(200);
    expect(await write(xSession!, { id: 'c-1' })).toEqual({ status: 200, body: expect.objectContaining({ namespace: 'cart' }) });
    expect(await t.redis.get(key)).toBe(`${compact}\n{"cart":{"id":"c-1"}}`);
  });
});
