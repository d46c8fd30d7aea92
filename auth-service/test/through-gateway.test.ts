import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { usersCommand } from '../src/cli.js';
import { captureIo } from '../../test/support/auth-cli.js';
import { cookieToken, startTestAuth, type TestAuth } from '../../test/support/auth-service.js';
import { routesYaml, startTestGateway, type TestGateway } from '../../test/support/gateway.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';

// The auth service behind a real gateway, the way it runs: the gateway strips the cookie and
// sends X-Session; what the service does must be what the gateway then honours (≤ 1 s).
describe('through the gateway', () => {
  let auth: TestAuth;
  let gw: TestGateway;
  let app: Upstream;

  beforeAll(async () => {
    auth = await startTestAuth({
      redisUrl: inject('redisUrl'),
      users: { zack: { password: 'zack-password', roles: ['user'], profile: { name: 'Zack' } } },
    });
    const authUrl = await auth.listen();
    app = await startUpstream('app');
    gw = await startTestGateway({
      redisUrl: inject('redisUrl'),
      routes: routesYaml({ auth: authUrl, public: app.url }),
      keyPrefix: auth.keyPrefix,
      keysJson: auth.keysJson,
    });
  });
  afterAll(async () => {
    await gw?.close();
    await app?.close();
    await auth?.close();
  });

  const send = (method: 'GET' | 'POST', url: string, token?: string, payload?: object): Promise<LightMyRequestResponse> =>
    gw.gw.app.inject({
      method,
      url,
      headers: { 'sec-fetch-site': 'same-origin', ...(token ? { cookie: `sid=${token}` } : {}) },
      ...(payload ? { payload } : {}),
    });

  const login = async () => {
    const res = await send('POST', '/auth/login', undefined, { username: 'zack', password: 'zack-password' });
    expect(res.statusCode).toBe(204);
    return cookieToken(res);
  };

  it('login sets a cookie the gateway accepts; the service never sees it', async () => {
    const token = await login();
    expect((await send('GET', '/api/orders/1', token)).statusCode).toBe(200);
    const me = await send('GET', '/auth/me', token);
    expect(me.statusCode).toBe(200);
    expect(me.json()).toEqual({ sub: 'zack', roles: ['user'], name: 'Zack' });
    const sessions = await send('GET', '/auth/sessions', token);
    expect((sessions.json() as { sessions: { current: boolean }[] }).sessions.filter((s) => s.current)).toHaveLength(1);
  });

  it('logout ends access at once', async () => {
    const token = await login();
    expect((await send('GET', '/api/orders/1', token)).statusCode).toBe(200);
    const out = await send('POST', '/auth/logout', token);
    expect(out.statusCode).toBe(204);
    expect(out.headers['set-cookie']).toMatch(/^sid=; .*Max-Age=0/);
    await vi.waitFor(async () => expect((await send('GET', '/api/orders/1', token)).statusCode).toBe(401), { timeout: 1000, interval: 25 });
  });

  it('logout-all ends every session of the user', async () => {
    const [a, b] = [await login(), await login()];
    for (const t of [a, b]) expect((await send('GET', '/api/orders/1', t)).statusCode).toBe(200);
    expect((await send('POST', '/auth/logout-all', a)).statusCode).toBe(204);
    await vi.waitFor(
      async () => {
        for (const t of [a, b]) expect((await send('GET', '/api/orders/1', t)).statusCode).toBe(401);
      },
      { timeout: 1000, interval: 25 },
    );
  });

  it('a role change applies to the live session without a new login', async () => {
    const token = await login();
    expect((await send('GET', '/admin/x', token)).statusCode).toBe(403);
    const io = captureIo(auth.env);
    expect(await usersCommand(['set-roles', 'zack', 'user,admin'], io)).toBe(0);
    expect(io.out()).toMatch(/updated roles of [1-9]\d* live sessions?/);
    await vi.waitFor(async () => expect((await send('GET', '/admin/x', token)).statusCode).toBe(200), { timeout: 1000, interval: 25 });
    expect(await usersCommand(['set-roles', 'zack', 'user'], captureIo(auth.env))).toBe(0);
    await vi.waitFor(async () => expect((await send('GET', '/admin/x', token)).statusCode).toBe(403), { timeout: 1000, interval: 25 });
  });

  it('disabling the user ends their access', async () => {
    const token = await login();
    expect((await send('GET', '/api/orders/1', token)).statusCode).toBe(200);
    expect(await usersCommand(['disable', 'zack'], captureIo(auth.env))).toBe(0);
    await vi.waitFor(async () => expect((await send('GET', '/api/orders/1', token)).statusCode).toBe(401), { timeout: 1000, interval: 25 });
  });
});
