import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KeyLayout, SessionStore, sessionRef } from '@sessiongate/session';
import { readSession } from '../../test/support/sessions.js';
import { newKeysJson } from '../../test/support/auth-service.js';
import { assertBuilt, runCli, startService, type Service } from '../../test/support/process.js';
import { freePort, startRedisServer, type RedisServer } from '../../test/support/redis-server.js';

// A login checks the password against the users it has loaded, then creates the session.
// `sessiongate users set-password` (or `disable`) rewrites the file and ends the user's
// sessions in between: the new session did not exist yet, so it must be ended by the login
// itself. The window is made wide and certain with real processes: the auth service is
// stopped (SIGSTOP) as soon as its login reaches Redis, before the password check ends; the
// CLI runs to completion; then the service continues (SIGCONT).

const OLD = 'old-Passw0rd-long-enough';
const NEW = 'new-Passw0rd-long-enough';
// a slow hash keeps the service inside the password check while it is stopped
const SLOW_COST = '17';

let redis: RedisServer;
let spy: Redis;
let svc: Service | undefined;

beforeAll(async () => {
  assertBuilt();
  redis = await startRedisServer();
  spy = new Redis(redis.url, { lazyConnect: true });
  await spy.connect();
});

afterEach(async () => {
  if (svc?.child.pid) process.kill(svc.child.pid, 'SIGCONT');
  await svc?.stop();
  svc = undefined;
});

afterAll(async () => {
  spy?.disconnect();
  await redis?.stop();
});

async function setUp(watch: boolean) {
  const dir = mkdtempSync(path.join(tmpdir(), 'sessiongate-login-race-'));
  const prefix = `sgtest:${randomUUID()}:`;
  const env = {
    REDIS_URL: redis.url,
    SESSIONGATE_REDIS_PREFIX: prefix,
    SESSIONGATE_USERS: path.join(dir, 'users.yaml'),
    SESSIONGATE_SCRYPT_COST: SLOW_COST,
    SESSIONGATE_WATCH_USERS: String(watch),
    // the service may be stopped before its first command's reply is read: the command
    // timeout must outlast the stop, or the login fails with 503 instead of reaching the check
    REDIS_COMMAND_TIMEOUT: '60s',
    X_SESSION_KEYS: newKeysJson(),
    HOST: '127.0.0.1',
    COOKIE_SECURE: 'false',
  };
  const added = await runCli(['users', 'add', 'alice', '--roles', 'user'], { env, stdin: `${OLD}\n` });
  expect(added.code, added.stderr).toBe(0);
  const port = await freePort();
  svc = startService(['auth'], { ...env, PORT: String(port), METRICS_PORT: String(await freePort()) });
  await svc.waitFor(/sessiongate auth ready/);
  const store = new SessionStore(spy, new KeyLayout(prefix));
  const login = async (password: string) => {
    const res = await fetch(`http://127.0.0.1:${port}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'alice', password }) });
    const token = /(?:^|,\s*)sid=([^;]+)/.exec(res.headers.get('set-cookie') ?? '')?.[1] ?? null;
    return { status: res.status, token };
  };
  return { env, store, login, service: svc };
}

/** Starts a login and stops the service the moment its first command about alice reaches Redis. */
async function loginStoppedMidway(login: (p: string) => Promise<{ status: number; token: string | null }>, service: Service) {
  const monitor = await spy.duplicate().monitor();
  const stopped = new Promise<void>((resolve) => {
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (args.some((a) => a.includes('alice'))) {
        process.kill(service.child.pid!, 'SIGSTOP');
        resolve();
      }
    });
  });
  const result = login(OLD);
  await stopped;
  monitor.disconnect();
  return result;
}

describe('a user changed while their login checks the password', () => {
  it('gets no session when the password changed in between (users file watched)', async () => {
    const { env, store, login, service } = await setUp(true);
    const pending = loginStoppedMidway(login, service);
    await new Promise((r) => setTimeout(r, 50));
    const changed = await runCli(['users', 'set-password', 'alice'], { env: { ...env, SESSIONGATE_SCRYPT_COST: '14' }, stdin: `${NEW}\n` });
    expect(changed.code, changed.stderr).toBe(0);
    expect(changed.stdout).toMatch(/ended 0 live sessions/);
    process.kill(service.child.pid!, 'SIGCONT');

    const res = await pending;
    expect(res.status).toBe(401);
    if (res.token) expect(await readSession(store, sessionRef(res.token))).toBeNull();
    expect(await store.list('alice')).toEqual([]);
    // the new password works, the old one no longer does
    expect((await login(NEW)).status).toBe(204);
    expect((await login(OLD)).status).toBe(401);
  });

  it('gets no session when the user was disabled in between (users file not watched)', async () => {
    const { env, store, login, service } = await setUp(false);
    const pending = loginStoppedMidway(login, service);
    await new Promise((r) => setTimeout(r, 50));
    const disabled = await runCli(['users', 'disable', 'alice'], { env });
    expect(disabled.code, disabled.stderr).toBe(0);
    process.kill(service.child.pid!, 'SIGCONT');

    const res = await pending;
    expect(res.status).toBe(401);
    expect(await store.list('alice')).toEqual([]);
  });
});
