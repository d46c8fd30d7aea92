import { mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { apiKeysCommand, usersCommand } from '../auth-service/src/cli.js';
import { captureIo } from './support/auth-cli.js';
import { cookieToken, newKeysJson, startTestAuth, writeUsersFile, type TestAuth } from './support/auth-service.js';
import { routesYaml, startTestGateway, type TestGateway } from './support/gateway.js';
import { assertBuilt, runCli } from './support/process.js';
import { startUpstream, type Upstream } from './support/upstream.js';

// API keys end to end: minted through the auth service (behind a gateway) and the CLI, used
// as `Authorization: Bearer` through two gateways that keep resolved credentials for a
// minute, revoked (one key, a disabled owner, a role change) within a second everywhere.

const KEY_RE = /^sgk_[A-Za-z0-9_-]{16}_[A-Za-z0-9_-]{43}$/;
const USERS = {
  alice: { password: 'alice-password-1', roles: ['user', 'admin'] },
  svc: { password: 'svc-password-not-kept', roles: ['user', 'reports'] },
  dora: { password: 'dora-password-1', roles: ['user'] },
};

const EXTRA_ROUTES = (up: string) => `  - name: machine
    prefix: /machine
    upstream: ${up}
    roles: [user]
    credentials: [cookie, api_key]
  - name: machine-admin
    prefix: /machine-admin
    upstream: ${up}
    roles: [admin]
    credentials: [api_key]
`;

function payloadOf(jws: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(jws.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('API keys', () => {
  let up: Upstream;
  let auth: TestAuth;
  let gws: TestGateway[];
  let usersDir: string;
  const logs: string[] = [];
  const logStream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString());
      cb();
    },
  });

  beforeAll(async () => {
    const redisUrl = inject('redisUrl');
    up = await startUpstream('svc');
    usersDir = mkdtempSync(path.join(tmpdir(), 'sg-api-keys-users-'));
    const usersFile = await writeUsersFile(USERS, usersDir);
    auth = await startTestAuth({ redisUrl, usersFile, keysJson: newKeysJson() });
    await auth.svc.app.listen({ port: 0, host: '127.0.0.1' });
    const authUrl = `http://127.0.0.1:${(auth.svc.app.server.address() as AddressInfo).port}`;
    const routes = routesYaml({ public: up.url, auth: authUrl }, EXTRA_ROUTES(up.url));
    // both gateways keep what they resolved for a minute: only a revocation message ends it early
    const env = { SESSION_CACHE_TTL: '60s', BEARER_MAX_FAILURES: '5', SESSIONGATE_FORWARD_AUTH_PROXIES: '127.0.0.1/32' };
    gws = [];
    for (let i = 0; i < 2; i++) {
      gws.push(await startTestGateway({ redisUrl, routes, env, keyPrefix: auth.keyPrefix, keysJson: auth.keysJson, ...(i === 0 ? { logStream } : {}) }));
    }
  }, 60_000);

  afterAll(async () => {
    await Promise.allSettled((gws ?? []).map((g) => g.close()));
    await auth?.close();
    await up?.close();
    if (usersDir) rmSync(usersDir, { recursive: true, force: true });
  });

  const gw = (i: number) => gws[i]!.gw.app;
  const cookieHeaders = (token: string) => ({ cookie: `sid=${token}`, 'sec-fetch-site': 'same-origin' });
  const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
  let ip = 0;
  /** A client address of its own, so the failure throttle of one test never reaches another. */
  const freshIp = () => `10.1.0.${++ip}`;

  async function login(user: keyof typeof USERS): Promise<string> {
    const res = await gw(0).inject({ method: 'POST', url: '/auth/login', payload: { username: user, password: USERS[user].password } });
    expect(res.statusCode, res.body).toBe(204);
    return cookieToken(res);
  }

  async function mint(token: string, body: Record<string, unknown>): Promise<{ id: string; key: string; roles: string[]; prefix: string }> {
    const res = await gw(0).inject({ method: 'POST', url: '/auth/keys', headers: cookieHeaders(token), payload: body });
    expect(res.statusCode, res.body).toBe(201);
    return res.json();
  }

  /** Every gateway answers `status` for this key on `url` (waiting ≤ 1 s for revocations to land). */
  async function expectEverywhere(key: string, url: string, status: number): Promise<void> {
    await vi.waitFor(
      async () => {
        for (const i of [0, 1]) expect((await gw(i).inject({ method: 'GET', url, headers: bearer(key), remoteAddress: freshIp() })).statusCode).toBe(status);
      },
      { timeout: 1000, interval: 50 },
    );
  }

  it('a user mints a key (shown once), lists it without the secret, and the key passes the gate with amr api_key', async () => {
    const cookie = await login('alice');
    const created = await mint(cookie, { name: 'ci deploy', roles: ['user'], expiresIn: '90d' });
    expect(created.key).toMatch(KEY_RE);
    expect(created.prefix).toBe(`sgk_${created.id}`);
    expect(created.roles).toEqual(['user']);

    const listed = await gw(1).inject({ method: 'GET', url: '/auth/keys', headers: cookieHeaders(cookie) });
    expect(listed.statusCode).toBe(200);
    expect(listed.body).not.toContain(created.key.slice(21));
    const [view] = listed.json().keys as { id: string; name: string; roles: string[]; expiresAt: string; lastUsedAt: string | null }[];
    expect(view).toMatchObject({ id: created.id, name: 'ci deploy', roles: ['user'], lastUsedAt: null });
    expect(Date.parse(view!.expiresAt) - Date.now()).toBeGreaterThan(89 * 86_400_000);

    up.clear();
    const res = await gw(1).inject({ method: 'GET', url: '/machine/jobs', headers: bearer(created.key) });
    expect(res.statusCode, res.body).toBe(200);
    const rec = up.last();
    expect(rec.headers.authorization).toBeUndefined();
    expect(JSON.stringify(rec.rawHeaders)).not.toContain(created.key.slice(21));
    const claims = payloadOf(rec.headers['x-session'] as string);
    expect(claims).toMatchObject({ sub: 'alice', roles: ['user'], amr: ['api_key'], key_id: created.id, aud: 'machine' });

    // a cookie on the same route says it is a session
    await gw(0).inject({ method: 'GET', url: '/machine/jobs', headers: cookieHeaders(cookie) });
    expect(payloadOf(up.last().headers['x-session'] as string)).toMatchObject({ sub: 'alice', amr: ['session'] });
    expect(payloadOf(up.last().headers['x-session'] as string).key_id).toBeUndefined();

    // last use is written (at most once a minute)
    await vi.waitFor(async () => {
      const again = await gw(0).inject({ method: 'GET', url: '/auth/keys', headers: cookieHeaders(cookie) });
      expect(again.json().keys[0].lastUsedAt).not.toBeNull();
    });
  });

  it('roles of a key never exceed what it was given, nor its owner: 403 past them, 400 when asking for more', async () => {
    const cookie = await login('alice');
    const { key } = await mint(cookie, { name: 'reader', roles: ['user'] });
    expect((await gw(0).inject({ method: 'GET', url: '/machine-admin/x', headers: bearer(key) })).statusCode).toBe(403);
    const dora = await login('dora');
    const res = await gw(0).inject({ method: 'POST', url: '/auth/keys', headers: cookieHeaders(dora), payload: { name: 'x', roles: ['admin'] } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toBe('bad_request');
  });

  it('bearer requests skip the CSRF check, cookie requests keep it, and both at once are refused', async () => {
    const cookie = await login('alice');
    const { key } = await mint(cookie, { name: 'writer' });
    const evil = { origin: 'https://evil.example' };
    expect((await gw(0).inject({ method: 'POST', url: '/machine/jobs', headers: { ...bearer(key), ...evil }, payload: {} })).statusCode).toBe(200);
    const cookieOnly = await gw(0).inject({ method: 'POST', url: '/machine/jobs', headers: { cookie: `sid=${cookie}`, ...evil }, payload: {} });
    expect(cookieOnly.statusCode).toBe(403);
    expect(cookieOnly.json().error).toBe('csrf_rejected');
    const both = await gw(0).inject({ method: 'POST', url: '/machine/jobs', headers: { ...cookieHeaders(cookie), ...bearer(key) }, payload: {} });
    expect(both.statusCode).toBe(400);
    expect(both.json().error).toBe('ambiguous_credentials');
  });

  it('a route without `credentials` takes cookies only; a key sent anywhere never reaches an upstream', async () => {
    const cookie = await login('alice');
    const { key } = await mint(cookie, { name: 'stray' });
    const res = await gw(0).inject({ method: 'GET', url: '/api/orders/1', headers: bearer(key) });
    expect(res.statusCode).toBe(401);
    expect(res.json().error).toBe('unauthenticated');
    up.clear();
    expect((await gw(0).inject({ method: 'GET', url: '/public/x', headers: bearer(key) })).statusCode).toBe(200);
    expect(up.last().headers.authorization).toBeUndefined();
    // someone else's scheme on a cookie route passes through untouched
    await gw(0).inject({ method: 'GET', url: '/public/x', headers: { authorization: 'Basic dTpw' } });
    expect(up.last().headers.authorization).toBe('Basic dTpw');
  });

  it('malformed headers, unknown keys and wrong secrets get 401 invalid_credentials; no log line holds a secret', async () => {
    const cookie = await login('alice');
    const { key, id } = await mint(cookie, { name: 'victim' });
    const wrongSecret = `${key.slice(0, 21)}${'A'.repeat(43)}`;
    const unknown = `sgk_${'B'.repeat(16)}_${'C'.repeat(43)}`;
    const cases = ['Basic dTpw', 'Bearer', 'Bearer not-a-key', `Bearer ${key}x`, `Bearer ${wrongSecret}`, `Bearer ${unknown}`, `Token ${key}`];
    for (const authorization of cases) {
      const res = await gw(0).inject({ method: 'GET', url: '/machine/x', headers: { authorization }, remoteAddress: freshIp() });
      expect(res.statusCode, authorization).toBe(401);
      expect(res.json().error, authorization).toBe('invalid_credentials');
    }
    const text = logs.join('');
    expect(text).toContain('bearer credential refused');
    expect(text).toContain(id);
    for (const secret of [key.slice(21), wrongSecret.slice(21), unknown.slice(21)]) expect(text).not.toContain(secret);
  });

  it('failed keys are throttled per client address: 429 past the limit, even for a good key; other addresses pass', async () => {
    const cookie = await login('alice');
    const { key } = await mint(cookie, { name: 'good' });
    const attacker = freshIp();
    const bad = `sgk_${'D'.repeat(16)}_${'E'.repeat(43)}`;
    for (let i = 0; i < 5; i++) {
      expect((await gw(0).inject({ method: 'GET', url: '/machine/x', headers: bearer(bad), remoteAddress: attacker })).statusCode).toBe(401);
    }
    const blocked = await gw(0).inject({ method: 'GET', url: '/machine/x', headers: bearer(key), remoteAddress: attacker });
    expect(blocked.statusCode).toBe(429);
    expect(blocked.json().error).toBe('too_many_requests');
    // the count is shared in Redis: the other gateway throttles after one more failure there
    expect((await gw(1).inject({ method: 'GET', url: '/machine/x', headers: bearer(bad), remoteAddress: attacker })).statusCode).toBe(401);
    expect((await gw(1).inject({ method: 'GET', url: '/machine/x', headers: bearer(key), remoteAddress: attacker })).statusCode).toBe(429);
    expect((await gw(0).inject({ method: 'GET', url: '/machine/x', headers: bearer(key), remoteAddress: freshIp() })).statusCode).toBe(200);
  });

  it('forward auth judges a bearer credential as the proxy path does', async () => {
    const port = await gws[0]!.listen();
    const cookie = await login('alice');
    const { key, id } = await mint(cookie, { name: 'behind nginx', roles: ['user'] });
    /** nginx's auth_request question, for a client at an address of its own. */
    const ask = (uri: string, headers: Record<string, string>) =>
      new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
        const all = { 'x-original-uri': uri, 'x-original-method': 'GET', 'x-forwarded-for': freshIp(), ...headers };
        const req = http.request({ host: '127.0.0.1', port, path: '/_sessiongate/authz', headers: all, agent: false }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        });
        req.on('error', reject);
        req.end();
      });
    const ok = await ask('/machine/jobs', bearer(key));
    expect(ok.status, ok.body).toBe(200);
    expect(payloadOf(ok.headers['x-session'] as string)).toMatchObject({ sub: 'alice', amr: ['api_key'], key_id: id, aud: 'machine' });
    // the same refusals as the proxy path: past the key's roles, a cookie-only route, a bad key
    expect((await ask('/machine-admin/x', bearer(key))).status).toBe(403);
    const cookieRoute = await ask('/api/orders/1', bearer(key));
    expect([cookieRoute.status, JSON.parse(cookieRoute.body).error]).toEqual([401, 'unauthenticated']);
    const wrong = await ask('/machine/jobs', bearer(`${key.slice(0, 21)}${'A'.repeat(43)}`));
    expect([wrong.status, JSON.parse(wrong.body).error]).toEqual([401, 'invalid_credentials']);
    // cookie and key at once: refused (nginx takes only 2xx, 401 and 403)
    const both = await ask('/machine/jobs', { ...bearer(key), cookie: `sid=${cookie}` });
    expect([both.status, JSON.parse(both.body).error]).toEqual([403, 'ambiguous_credentials']);
  });

  it('DELETE /auth/keys/:id ends the key on every gateway within 1 s; another user cannot revoke it', async () => {
    const cookie = await login('alice');
    const { key, id } = await mint(cookie, { name: 'short-lived' });
    await expectEverywhere(key, '/machine/x', 200);
    const dora = await login('dora');
    expect((await gw(1).inject({ method: 'DELETE', url: `/auth/keys/${id}`, headers: cookieHeaders(dora) })).statusCode).toBe(404);
    await expectEverywhere(key, '/machine/x', 200);
    expect((await gw(1).inject({ method: 'DELETE', url: `/auth/keys/${id}`, headers: cookieHeaders(cookie) })).statusCode).toBe(204);
    await expectEverywhere(key, '/machine/x', 401);
  });

  it('an expired key is refused, even while a gateway holds it', async () => {
    const cookie = await login('dora');
    const { key } = await mint(cookie, { name: 'brief', expiresIn: '1s' });
    await expectEverywhere(key, '/machine/x', 200);
    await new Promise((r) => setTimeout(r, 1100));
    await expectEverywhere(key, '/machine/x', 401);
  });

  it('a key cannot mint keys', async () => {
    const cookie = await login('alice');
    const { key } = await mint(cookie, { name: 'no-minting' });
    const res = await gw(0).inject({ method: 'POST', url: '/auth/keys', headers: bearer(key), payload: { name: 'child' } });
    expect(res.statusCode).toBe(401);
  });

  it('the CLI mints a service account key; a role change cuts it down and disabling the owner ends it, within 1 s', async () => {
    const io = captureIo(auth.env);
    expect(await apiKeysCommand(['create', 'svc', '--roles', 'user,reports', '--expires', '30d', '--file', auth.usersFile], io), io.err()).toBe(0);
    const key = io.out().trim();
    expect(key).toMatch(KEY_RE);
    expect(io.err()).toContain('not shown again');
    await expectEverywhere(key, '/machine/x', 200);

    const listIo = captureIo(auth.env);
    expect(await apiKeysCommand(['list', '--user', 'svc', '--json'], listIo)).toBe(0);
    expect(listIo.out()).not.toContain(key.slice(21));
    expect(JSON.parse(listIo.out()).keys[0]).toMatchObject({ user: 'svc', name: 'svc', roles: ['user', 'reports'] });

    const refused = captureIo(auth.env);
    expect(await apiKeysCommand(['create', 'x', '--user', 'svc', '--roles', 'admin', '--file', auth.usersFile], refused)).toBe(1);
    expect(refused.err()).toContain('does not hold');

    expect(await usersCommand(['set-roles', 'svc', 'reports', '--file', auth.usersFile], captureIo(auth.env))).toBe(0);
    await expectEverywhere(key, '/machine/x', 403);

    expect(await usersCommand(['disable', 'svc', '--file', auth.usersFile], captureIo(auth.env))).toBe(0);
    await expectEverywhere(key, '/machine/x', 401);
  });

  it('the CLI revokes a key by its id alone', async () => {
    const io = captureIo(auth.env);
    expect(await apiKeysCommand(['create', 'ops', '--user', 'dora', '--file', auth.usersFile], io), io.err()).toBe(0);
    const key = io.out().trim();
    await expectEverywhere(key, '/machine/x', 200);
    const id = key.slice(4, 20);
    const revokeIo = captureIo(auth.env);
    expect(await apiKeysCommand(['revoke', id], revokeIo), revokeIo.err()).toBe(0);
    expect(revokeIo.out()).toContain('of dora');
    await expectEverywhere(key, '/machine/x', 401);
    const again = captureIo(auth.env);
    expect(await apiKeysCommand(['revoke', id], again)).toBe(1);
  });

  it('the installed CLI, as a process of its own: create prints only the key on stdout; a Redis out of reach is an error, not a key', async () => {
    assertBuilt();
    const env = { ...auth.env };
    const made = await runCli(['api-keys', 'create', 'from-shell', '--user', 'dora', '--roles', 'user', '--expires', '1h', '--file', auth.usersFile], { env });
    expect(made.code, made.stderr).toBe(0);
    const key = made.stdout.trim();
    expect(key).toMatch(KEY_RE);
    expect(made.stderr).not.toContain(key.slice(21));
    await expectEverywhere(key, '/machine/x', 200);
    const listed = await runCli(['api-keys', 'list', '--user', 'dora'], { env });
    expect(listed.code).toBe(0);
    expect(listed.stdout).toContain(key.slice(4, 20));
    expect(listed.stdout).not.toContain(key.slice(21));
    const down = await runCli(['api-keys', 'create', 'x', '--user', 'dora', '--file', auth.usersFile], { env: { ...env, REDIS_URL: 'redis://127.0.0.1:1' } });
    expect(down.code).toBe(1);
    expect(down.stdout).toBe('');
    expect(down.stderr).toContain('no key was created');
  });
});
