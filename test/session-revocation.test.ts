import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import { usersCommand } from '@sessiongate/auth-service/cli';
import { captureIo } from './support/auth-cli.js';
import { cookieToken, newKeysJson, startTestAuth, writeUsersFile, type TestAuth } from './support/auth-service.js';
import { routesYaml, startTestGateway, type TestGateway } from './support/gateway.js';
import { startRedisCluster, type RedisCluster } from './support/redis-cluster.js';
import { startUpstream, type Upstream } from './support/upstream.js';

// Logins, lists and logouts of one user racing each other, then a revocation (logout-all,
// a role change, a new password, disable): afterwards no cookie of that user may work on any
// gateway, nor carry a role it lost. Run on a standalone Redis and on a 3-master Cluster.
// Both gateways keep resolved sessions for a minute: only a revocation message ends them early.

const PASSWORD = 'pia-password-1';
const USERS = {
  pia: { password: PASSWORD, roles: ['user', 'admin'] },
  ola: { password: 'ola-password-1', roles: ['user'] },
};

describe.each(['standalone', 'cluster'] as const)('revocation after racing logins (%s Redis)', (kind) => {
  let cluster: RedisCluster | undefined;
  let up: Upstream;
  let auth: TestAuth;
  let gws: TestGateway[];
  let usersDir: string;

  beforeAll(async () => {
    let redisUrl = inject('redisUrl');
    let env: Record<string, string> = {};
    if (kind === 'cluster') {
      cluster = await startRedisCluster(3);
      redisUrl = `redis://127.0.0.1:${cluster.nodes[0]!.port}`;
      env = { REDIS_CLUSTER_NODES: cluster.seeds };
    }
    up = await startUpstream('svc');
    usersDir = mkdtempSync(path.join(tmpdir(), 'sg-revocation-users-'));
    const usersFile = await writeUsersFile(USERS, usersDir);
    // eight logins of one account at once would hit the per-account throttle (it reserves
    // first); forty live sessions of one user are over the default cap
    const authEnv = { ...env, LOGIN_MAX_FAILURES_PER_ACCOUNT: '1000', SESSION_MAX_PER_USER: '100' };
    auth = await startTestAuth({ redisUrl, usersFile, keysJson: newKeysJson(), env: authEnv });
    await auth.svc.app.listen({ port: 0, host: '127.0.0.1' });
    const authUrl = `http://127.0.0.1:${(auth.svc.app.server.address() as AddressInfo).port}`;
    const routes = routesYaml({ public: up.url, auth: authUrl });
    const gwEnv = { ...env, SESSION_CACHE_TTL: '60s' };
    gws = [];
    for (let i = 0; i < 2; i++) {
      gws.push(await startTestGateway({ redisUrl, routes, env: gwEnv, keyPrefix: auth.keyPrefix, keysJson: auth.keysJson }));
    }
  }, 60_000);

  afterAll(async () => {
    if (cluster) {
      // the cluster goes away as a whole: close the apps, not the harnesses' key cleanup
      await Promise.allSettled((gws ?? []).map(async (g) => (await g.gw.close(), g.redis.disconnect())));
      await auth?.svc.close().catch(() => undefined);
      auth?.redis.disconnect();
      await cluster.stop();
    } else {
      await Promise.allSettled((gws ?? []).map((g) => g.close()));
      await auth?.close();
    }
    await up?.close();
    if (usersDir) rmSync(usersDir, { recursive: true, force: true });
  });

  const headers = (token: string) => ({ cookie: `sid=${token}`, 'sec-fetch-site': 'same-origin' });
  const gw = (i: number) => gws[i % gws.length]!;

  async function login(i: number, user: keyof typeof USERS = 'pia'): Promise<string> {
    const res = await gw(i).gw.app.inject({ method: 'POST', url: '/auth/login', payload: { username: user, password: USERS[user].password } });
    expect(res.statusCode, res.body).toBe(204);
    return cookieToken(res);
  }

  const call = (i: number, method: 'GET' | 'POST', url: string, token: string) => gw(i).gw.app.inject({ method, url, headers: headers(token) });

  /** Every token answers `status` on /admin through every gateway (waiting ≤ 1 s for revocations to land). */
  async function expectEverywhere(tokens: readonly string[], status: number): Promise<void> {
    await vi.waitFor(
      async () => {
        for (const t of tokens) for (const g of [0, 1]) expect((await call(g, 'GET', '/admin/x', t)).statusCode).toBe(status);
      },
      { timeout: 1000, interval: 50 },
    );
  }

  /** Eight logins at once, five times over; each cookie used once on each gateway (so both cache it). */
  async function burst(): Promise<string[]> {
    const tokens: string[] = [];
    for (let round = 0; round < 5; round++) tokens.push(...(await Promise.all(Array.from({ length: 8 }, (_, i) => login(i)))));
    for (const t of tokens) for (const g of [0, 1]) expect((await call(g, 'GET', '/admin/x', t)).statusCode).toBe(200);
    return tokens;
  }

  const cli = (argv: string[], stdin?: string) => usersCommand(argv, captureIo(auth.env, stdin));

  it('random logins, lists and logouts, then logout-all: no cookie of the user works anywhere', async () => {
    type Op = { kind: 'login'; gw: number } | { kind: 'list'; gw: number } | { kind: 'logout'; gw: number; of: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      { arbitrary: fc.record({ kind: fc.constant('login' as const), gw: fc.nat(1) }), weight: 3 },
      { arbitrary: fc.record({ kind: fc.constant('list' as const), gw: fc.nat(1) }), weight: 2 },
      { arbitrary: fc.record({ kind: fc.constant('logout' as const), gw: fc.nat(1), of: fc.nat(40) }), weight: 1 },
    );
    const other = await login(0, 'ola');
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 12, maxLength: 24 }), fc.scheduler(), async (ops, s) => {
        const logins: Promise<string>[] = [];
        const running: Promise<unknown>[] = [];
        for (const o of ops) {
          if (o.kind === 'login') {
            const p = s.schedule(Promise.resolve(o.gw)).then((g) => login(g));
            logins.push(p);
            running.push(p);
          } else if (logins.length > 0) {
            const target = logins[o.kind === 'logout' ? o.of % logins.length : logins.length - 1]!;
            const path = o.kind === 'list' ? '/auth/sessions' : '/auth/logout';
            const method = o.kind === 'list' ? 'GET' : 'POST';
            running.push(
              target.then(async (t) => {
                await s.schedule(Promise.resolve());
                const res = await call(o.gw, method, path, t);
                // a logout may have ended this session first
                expect([200, 204, 401]).toContain(res.statusCode);
              }),
            );
          }
        }
        await s.waitFor(Promise.all(running));
        const tokens = await Promise.all(logins);
        const closer = await login(0);
        expect((await call(1, 'POST', '/auth/logout-all', closer)).statusCode).toBe(204);
        await expectEverywhere([...tokens, closer], 401);
        // another user's session is not touched
        expect((await call(1, 'GET', '/api/orders/1', other)).statusCode).toBe(200);
      }),
      { numRuns: 4, seed: 4242, endOnFailure: true },
    );
  }, 120_000);

  it('after bursts of parallel logins, logout-all, set-roles, set-password and disable each leave no old cookie or role', async () => {
    let tokens = await burst();
    expect((await call(0, 'POST', '/auth/logout-all', tokens[0]!)).statusCode).toBe(204);
    await expectEverywhere(tokens, 401);

    // losing a role: no cookie may still be served it
    tokens = await burst();
    expect(await cli(['set-roles', 'pia', 'user'])).toBe(0);
    await expectEverywhere(tokens, 403);
    for (const t of tokens) expect((await call(1, 'GET', '/api/orders/1', t)).statusCode).toBe(200);

    expect(await cli(['set-password', 'pia'], 'pia-password-2\n')).toBe(0);
    await expectEverywhere(tokens, 401);

    // back to the first password and the admin role, once the service has reloaded the file
    expect(await cli(['set-password', 'pia'], `${PASSWORD}\n`)).toBe(0);
    expect(await cli(['set-roles', 'pia', 'user,admin'])).toBe(0);
    await vi.waitFor(
      async () => {
        expect((await auth.svc.directory.find('pia'))?.roles).toEqual(['user', 'admin']);
        expect((await auth.svc.directory.verify('pia', PASSWORD)).outcome).toBe('ok');
      },
      { timeout: 5000, interval: 50 },
    );
    tokens = await burst();
    expect(await cli(['disable', 'pia'])).toBe(0);
    await expectEverywhere(tokens, 401);
    expect(await cli(['enable', 'pia'])).toBe(0);
  }, 120_000);
});
