import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../../test/support/redis-server.js';
import { assertBuilt, runCli, startService, type Service } from '../../test/support/process.js';
import { TEST_SCRYPT_COST, newKeysJson } from '../../test/support/auth-service.js';

// `sessiongate auth` as operators run it: a real process, signals and its users file.

const dir = mkdtempSync(path.join(tmpdir(), 'sessiongate-auth-proc-'));
const usersFile = path.join(dir, 'users.yaml');
const env = () => ({
  REDIS_URL: inject('redisUrl'),
  SESSIONGATE_REDIS_PREFIX: `sgtest:${randomUUID()}:`,
  SESSIONGATE_USERS: usersFile,
  SESSIONGATE_SCRYPT_COST: TEST_SCRYPT_COST,
  SESSIONGATE_WATCH_USERS: 'false',
  X_SESSION_KEYS: newKeysJson(),
  HOST: '127.0.0.1',
  COOKIE_SECURE: 'false',
});
let svc: Service | undefined;

beforeAll(async () => {
  assertBuilt();
  const r = await runCli(['users', 'add', 'alice', '--roles', 'user'], { env: env(), stdin: 'alice-Passw0rd-long\n' });
  expect(r.code, r.stderr).toBe(0);
});

afterAll(async () => {
  await svc?.stop();
});

describe('a running auth service', () => {
  it('reloads its users file on SIGHUP without stopping, and exits 0 on SIGTERM', async () => {
    const port = await freePort();
    const metricsPort = await freePort();
    const e = env();
    svc = startService(['auth'], { ...e, PORT: String(port), METRICS_PORT: String(metricsPort) });
    await svc.waitFor(/sessiongate auth ready/);
    const login = (username: string, password: string) =>
      fetch(`http://127.0.0.1:${port}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) });
    expect((await login('alice', 'alice-Passw0rd-long')).status).toBe(204);
    expect((await login('bob', 'bob-Passw0rd-long')).status).toBe(401);

    // a user added to the file by another process, picked up on SIGHUP (file watching is off)
    const added = await runCli(['users', 'add', 'bob', '--roles', 'user'], { env: e, stdin: 'bob-Passw0rd-long\n' });
    expect(added.code, added.stderr).toBe(0);
    svc.child.kill('SIGHUP');
    await svc.waitFor(/users file reloaded/);
    expect((await login('bob', 'bob-Passw0rd-long')).status).toBe(204);
    expect(svc.child.exitCode).toBeNull();

    svc.child.kill('SIGTERM');
    expect(await svc.exited()).toEqual({ code: 0, signal: null });
    expect(svc.output().match(/shutdown complete/g)).toHaveLength(1);
    svc = undefined;
  });

  it('refuses to start on an invalid users file, with line:column', async () => {
    const bad = path.join(dir, 'bad-users.yaml');
    writeFileSync(bad, 'version: 1\nusers:\n  alice:\n    roles: [user\n');
    const r = await runCli(['auth'], { env: { ...env(), SESSIONGATE_USERS: bad, PORT: '0', METRICS_PORT: '0' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/bad-users\.yaml:\d+:\d+/);
  });
});
