import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { assertBuilt } from '../../test/support/process.js';
import { startTestAuth, type TestAuth } from '../../test/support/auth-service.js';
import { routesYaml } from '../../test/support/gateway.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';
import { freshGet, startWorkerGateway, type WorkerGateway } from '../../test/support/workers.js';

// Two worker processes, each with its own session cache: a logout through the real auth
// service ends the session in both within a second, although both had it cached for a minute.

const dir = mkdtempSync(path.join(tmpdir(), 'sg-workers-revocation-'));
let up: Upstream;
let auth: TestAuth;
let gw: WorkerGateway;

beforeAll(async () => {
  assertBuilt();
  const redisUrl = inject('redisUrl');
  up = await startUpstream('orders');
  auth = await startTestAuth({ redisUrl, users: { pia: { password: 'pia-password-1', roles: ['user'] } } });
  await auth.svc.app.listen({ port: 0, host: '127.0.0.1' });
  const authUrl = `http://127.0.0.1:${(auth.svc.app.server.address() as AddressInfo).port}`;
  const routesFile = path.join(dir, 'routes.yaml');
  writeFileSync(routesFile, routesYaml({ public: up.url, auth: authUrl }));
  gw = await startWorkerGateway(2, {
    REDIS_URL: redisUrl,
    SESSIONGATE_REDIS_PREFIX: auth.keyPrefix,
    X_SESSION_KEYS: auth.keysJson,
    SESSIONGATE_ROUTES: routesFile,
    SESSIONGATE_WATCH_ROUTES: 'false',
    SESSION_CACHE_TTL: '60s',
  });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  await auth?.close();
  await up?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Pids of the workers that answered `path` with `status`, from their request log lines. */
function pidsAnswering(pathname: string, status: number, since: number): Set<number> {
  return new Set(
    gw
      .lines()
      .slice(since)
      .filter((l) => l.msg === 'request' && l.path === pathname && l.status === status)
      .map((l) => l.pid as number),
  );
}

it('a logout reaches every worker within 1 s', async () => {
  const same = { 'sec-fetch-site': 'same-origin', 'content-type': 'application/json' };
  const login = await fetch(`http://127.0.0.1:${gw.port}/auth/login`, {
    method: 'POST',
    headers: same,
    body: JSON.stringify({ username: 'pia', password: 'pia-password-1' }),
  });
  expect(login.status, await login.text()).toBe(204);
  const cookie = login.headers.getSetCookie()[0]!.split(';')[0]!;
  expect(cookie).toMatch(/^sid=/);

  // every worker resolves the session and then serves it from its cache
  const before = gw.lines().length;
  for (let i = 0; i < 40; i++) expect((await freshGet(gw.port, '/api/orders/1', { cookie })).status).toBe(200);
  await new Promise((r) => setTimeout(r, 200)); // the last request lines reach the pipe
  expect(pidsAnswering('/api/orders/1', 200, before)).toEqual(new Set(gw.workerPids()));
  const metrics = await gw.metrics();
  expect(metrics).toMatch(/^sessiongate_session_lookups_total\{outcome="valid",source="cache"\} (3[0-9]|40)$/m);

  const logout = await freshGet(gw.port, '/auth/logout', { cookie, 'sec-fetch-site': 'same-origin' }, 'POST');
  expect(logout.status).toBe(204);
  const loggedOut = Date.now();
  const afterLogout = gw.lines().length;
  // from the logout's answer on, new connections find the session gone within a second
  let allRefused = false;
  while (!allRefused) {
    const statuses = await Promise.all(Array.from({ length: 8 }, () => freshGet(gw.port, '/api/orders/2', { cookie })));
    allRefused = statuses.every((s) => s.status === 401);
    if (!allRefused) expect(Date.now() - loggedOut).toBeLessThan(1000);
  }
  expect(Date.now() - loggedOut).toBeLessThan(1000);
  for (let i = 0; i < 20; i++) expect((await freshGet(gw.port, '/api/orders/3', { cookie })).status).toBe(401);
  await new Promise((r) => setTimeout(r, 200));
  expect(pidsAnswering('/api/orders/3', 401, afterLogout)).toEqual(new Set(gw.workerPids()));
});
