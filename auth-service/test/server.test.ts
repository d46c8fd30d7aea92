import { randomUUID } from 'node:crypto';
import { readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { AddressInfo } from 'node:net';
import { AUTH_HELP, authCommand } from '../src/cli.js';
import { authConfigFromEnv } from '../src/config.js';
import { startAuthServer } from '../src/server.js';
import type { AuthService } from '../src/app.js';
import { captureIo } from '../../test/support/auth-cli.js';
import { TEST_SCRYPT_COST, deletePrefix, newKeysJson, writeUsersFile } from '../../test/support/auth-service.js';

const here = path.dirname(fileURLToPath(import.meta.url));

describe('sessiongate auth: settings', () => {
  const base = () => ({ X_SESSION_KEYS: newKeysJson(), REDIS_URL: 'redis://127.0.0.1:1' });

  it('refuses to start without X_SESSION_KEYS, naming it (exit 1)', async () => {
    const io = captureIo({ REDIS_URL: 'redis://127.0.0.1:1' });
    expect(await authCommand([], io)).toBe(1);
    expect(io.err()).toMatch(/^sessiongate auth: invalid setting X_SESSION_KEYS: required/);
  });

  it('names the variable of any invalid setting', async () => {
    const cases: [Record<string, string>, string][] = [
      [{ PORT: 'http' }, 'PORT'],
      [{ METRICS_PORT: '70000' }, 'METRICS_PORT'],
      [{ AUTH_PORT: 'http', PORT: '4000' }, 'AUTH_PORT'],
      [{ AUTH_METRICS_PORT: '-1' }, 'AUTH_METRICS_PORT'],
      [{ LOGIN_DEFAULT_NEXT: 'https://evil.example/' }, 'LOGIN_DEFAULT_NEXT'],
      [{ SESSIONGATE_BRAND_LOGO_URL: 'javascript:alert(1)' }, 'SESSIONGATE_BRAND_LOGO_URL'],
      [{ REDIS_URL: 'http://x' }, 'REDIS_URL'],
      [{ LOGIN_MAX_FAILURES_PER_ACCOUNT: '0' }, 'LOGIN_MAX_FAILURES_PER_ACCOUNT'],
      [{ LOGIN_MAX_FAILURES_PER_IP: 'many' }, 'LOGIN_MAX_FAILURES_PER_IP'],
      [{ LOGIN_FAILURE_WINDOW: 'soon' }, 'LOGIN_FAILURE_WINDOW'],
      [{ SESSIONGATE_TRUSTED_PROXIES: '10.0.0.0/8, gateway' }, 'SESSIONGATE_TRUSTED_PROXIES'],
      [{ SESSIONGATE_SCRYPT_COST: '12' }, 'SESSIONGATE_SCRYPT_COST'],
      [{ SESSION_COOKIE_NAME: '__Host-sid', COOKIE_SECURE: 'false' }, 'SESSION_COOKIE_NAME'],
      [{ SESSION_IDLE_TIMEOUT: '2h', SESSION_ABSOLUTE_TIMEOUT: '1h' }, 'SESSION_ABSOLUTE_TIMEOUT'],
      [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL'],
      [{ SESSION_MAX_PER_USER: '0' }, 'SESSION_MAX_PER_USER'],
      [{ SESSION_MAX_PER_USER: '1001' }, 'SESSION_MAX_PER_USER'],
      // a brace would become the Cluster hash tag and split a user's keys across slots
      [{ SESSIONGATE_REDIS_PREFIX: 'sg{x:' }, 'SESSIONGATE_REDIS_PREFIX'],
    ];
    for (const [env, variable] of cases) {
      const io = captureIo({ ...base(), ...env });
      expect(await authCommand([], io), variable).toBe(1);
      expect(io.err()).toMatch(new RegExp(`^sessiongate auth: invalid setting ${variable}: `));
    }
  });

  it('has defaults for everything else', () => {
    const c = authConfigFromEnv(base());
    expect(c).toMatchObject({
      host: '0.0.0.0',
      port: 4000,
      metricsPort: 9092,
      usersFile: './users.yaml',
      scryptCost: 17,
      maxSessionsPerUser: 20,
      trustedProxies: ['127.0.0.1/32', '::1/128'],
      throttle: { maxPerAccount: 5, maxPerIp: 100, windowMs: 15 * 60_000 },
      xSession: { issuer: 'sessiongate', audience: 'auth' },
      session: { cookieName: 'sid', cookieSecure: true, idleTimeoutMs: 30 * 60_000, absoluteTimeoutMs: 12 * 3_600_000, keyPrefix: 'sg:' },
    });
  });

  it('reads AUTH_PORT and friends first, the plain PORT, HOST, METRICS_PORT as fallbacks', () => {
    const both = { ...base(), HOST: '127.0.0.2', PORT: '8080', METRICS_PORT: '9091', AUTH_HOST: '127.0.0.3', AUTH_PORT: '4100', AUTH_METRICS_PORT: '9192' };
    expect(authConfigFromEnv(both)).toMatchObject({ host: '127.0.0.3', port: 4100, metricsHost: '127.0.0.3', metricsPort: 9192 });
    expect(authConfigFromEnv({ ...base(), HOST: '127.0.0.2', PORT: '4200', METRICS_PORT: '9292' })).toMatchObject({
      host: '127.0.0.2',
      port: 4200,
      metricsHost: '127.0.0.2',
      metricsPort: 9292,
    });
    for (const v of ['AUTH_HOST', 'AUTH_PORT', 'AUTH_METRICS_HOST', 'AUTH_METRICS_PORT', 'LOGIN_DEFAULT_NEXT', 'SESSIONGATE_BRAND_NAME']) expect(AUTH_HELP, v).toContain(v);
    expect(AUTH_HELP).toMatch(/--port N .*\(AUTH_PORT, 4000\)/);
  });

  it('--help lists every environment variable the service reads', async () => {
    const io = captureIo({});
    expect(await authCommand(['--help'], io)).toBe(0);
    expect(io.out()).toBe(AUTH_HELP);
    // every variable named in the service's sources and the session module it reads from
    const sources = [
      ...readdirSync(path.join(here, '../src'), { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('.ts') && !f.startsWith('users/'))
        .map((f) => path.join(here, '../src', f)),
      path.join(here, '../../session/src/settings.ts'),
      path.join(here, '../../session/src/redis.ts'),
    ];
    const names = new Set<string>();
    for (const f of sources) {
      for (const m of readFileSync(f, 'utf8').matchAll(/env(?:\.|, ')([A-Z][A-Z0-9_]{2,})/g)) names.add(m[1]!);
    }
    expect(names.size).toBeGreaterThan(20);
    for (const n of names) expect(AUTH_HELP, n).toContain(n);
  });
});

describe('sessiongate auth: the server', () => {
  let svc: AuthService;
  let usersFile: string;

  beforeAll(async () => {
    usersFile = await writeUsersFile({ yan: { password: 'yan-password', roles: ['user'] } });
    const config = authConfigFromEnv({
      X_SESSION_KEYS: newKeysJson(),
      REDIS_URL: inject('redisUrl'),
      SESSIONGATE_USERS: usersFile,
      SESSIONGATE_SCRYPT_COST: TEST_SCRYPT_COST,
      SESSIONGATE_REDIS_PREFIX: `sgtest:${randomUUID()}:`,
      HOST: '127.0.0.1',
      PORT: '0',
      METRICS_PORT: '0',
    });
    svc = await startAuthServer(config, { logger: { level: 'silent' } });
  });
  afterAll(async () => {
    await deletePrefix(svc.app.sessionStore.redis, svc.app.sessionStore.keys.prefix);
    await svc.close();
    rmSync(path.dirname(usersFile), { recursive: true, force: true });
  });

  const url = (app: AuthService['app'], p: string) => `http://127.0.0.1:${(app.server.address() as AddressInfo).port}${p}`;

  it('serves /healthz, /readyz and /metrics on the metrics port only', async () => {
    expect(await (await fetch(url(svc.ops, '/healthz'))).json()).toEqual({ status: 'ok' });
    const ready = await fetch(url(svc.ops, '/readyz'));
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', checks: { redis: true, users: true } });
    const metrics = await (await fetch(url(svc.ops, '/metrics'))).text();
    for (const name of [
      'sessiongate_auth_logins_total{outcome="success"}',
      'sessiongate_auth_throttled_total{scope="account"}',
      'sessiongate_auth_sessions_created_total',
      'sessiongate_auth_sessions_revoked_total{reason="logout"}',
      'sessiongate_auth_users 1',
      'sessiongate_auth_users_reloads_total{result="failure"} 0',
      'sessiongate_auth_users_last_reload_successful 1',
      `sessiongate_build_info{version="${(JSON.parse(readFileSync(path.join(here, '../package.json'), 'utf8')) as { version: string }).version}",node_version="${process.version}"} 1`,
      'process_cpu_user_seconds_total',
    ]) {
      expect(metrics).toContain(name);
    }
    expect((await fetch(url(svc.app, '/metrics'))).status).toBe(404);
  });

  it('answers logins on the public port', async () => {
    const res = await fetch(url(svc.app, '/auth/login'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'yan', password: 'yan-password' }),
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('set-cookie')).toMatch(/^sid=[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{4}; /);
  });

  it('says not ready while the users file is missing', async () => {
    const config = authConfigFromEnv({
      X_SESSION_KEYS: newKeysJson(),
      REDIS_URL: inject('redisUrl'),
      SESSIONGATE_USERS: path.join(path.dirname(usersFile), 'not-there.yaml'),
      SESSIONGATE_REDIS_PREFIX: `sgtest:${randomUUID()}:`,
      HOST: '127.0.0.1',
      PORT: '0',
      METRICS_PORT: '0',
      SESSIONGATE_SCRYPT_COST: TEST_SCRYPT_COST,
    });
    const other = await startAuthServer(config, { logger: { level: 'silent' } });
    try {
      const ready = await fetch(url(other.ops, '/readyz'));
      expect(ready.status).toBe(503);
      expect(await ready.json()).toEqual({ status: 'not_ready', checks: { redis: true, users: false } });
    } finally {
      await other.close();
    }
  });

  it('refuses an invalid users file, with its line (exit 1)', async () => {
    const bad = path.join(path.dirname(usersFile), 'bad.yaml');
    writeFileSync(bad, 'version: 1\nusers:\n  zoe:\n    roles: user\n');
    const io = captureIo({ X_SESSION_KEYS: newKeysJson(), REDIS_URL: inject('redisUrl'), SESSIONGATE_USERS: bad, PORT: '0', METRICS_PORT: '0' });
    expect(await authCommand([], io)).toBe(1);
    expect(io.err()).toContain(`${bad}:4:5: users.zoe.password: is required`);
    expect(io.err()).toContain(`${bad}:4:12: users.zoe.roles: must be a list of at most 64 role names`);
  });
});
