import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateKeySet } from '@sessiongate/session';
import { assertBuilt, runCli, startService, type Service } from './support/process.js';
import { freePort } from './support/redis-server.js';
import { startUpstream, type Upstream } from './support/upstream.js';

// One exported environment for both processes (a systemd EnvironmentFile, a shell with
// `set -a`): the plain PORT/METRICS_PORT are set too, and would put both on one port; the
// service-specific GATEWAY_* and AUTH_* variables win, so both start and work together.

const dir = mkdtempSync(path.join(tmpdir(), 'sessiongate-sharedenv-'));
const services: Service[] = [];
let up: Upstream;

beforeAll(async () => {
  assertBuilt();
  up = await startUpstream('app');
});

afterAll(async () => {
  for (const s of services) await s.stop();
  await up?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('one environment, two processes', () => {
  it('runs the gateway and the auth service from the same variables, each on its own ports', async () => {
    const [gwPort, gwMetrics, authPort, authMetrics, plainPort, plainMetrics] = await Promise.all([1, 2, 3, 4, 5, 6].map(() => freePort()));
    const routes = path.join(dir, 'routes.yaml');
    writeFileSync(
      routes,
      `version: 1\nroutes:\n  - name: auth\n    prefix: /auth\n    upstream: http://127.0.0.1:${authPort}\n    auth: optional\n` +
        `  - name: app\n    prefix: /app\n    upstream: ${up.url}\n    roles: [user]\n`,
    );
    const env: Record<string, string> = {
      REDIS_URL: inject('redisUrl'),
      SESSIONGATE_REDIS_PREFIX: `sgtest:${randomUUID()}:`,
      X_SESSION_KEYS: JSON.stringify(generateKeySet('HS256')),
      SESSIONGATE_ROUTES: routes,
      SESSIONGATE_USERS: path.join(dir, 'users.yaml'),
      SESSIONGATE_SCRYPT_COST: '14',
      COOKIE_SECURE: 'false',
      HOST: '127.0.0.1',
      PORT: String(plainPort),
      METRICS_PORT: String(plainMetrics),
      GATEWAY_PORT: String(gwPort),
      GATEWAY_METRICS_PORT: String(gwMetrics),
      AUTH_PORT: String(authPort),
      AUTH_METRICS_PORT: String(authMetrics),
    };
    const add = await runCli(['users', 'add', 'ada', '--roles', 'user'], { env, stdin: 'ada-password-1\n' });
    expect(add.code, add.stderr).toBe(0);

    services.push(startService(['gateway'], env), startService(['auth'], env));
    await Promise.all([services[0]!.waitFor(/sessiongate gateway ready/), services[1]!.waitFor(/sessiongate auth ready/)]);
    for (const p of [gwMetrics, authMetrics]) expect((await fetch(`http://127.0.0.1:${p}/readyz`)).status).toBe(200);
    // nobody took the plain ports
    await expect(fetch(`http://127.0.0.1:${plainPort}/`)).rejects.toThrow();

    const login = await fetch(`http://127.0.0.1:${gwPort}/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'ada', password: 'ada-password-1' }),
    });
    expect(login.status).toBe(204);
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const res = await fetch(`http://127.0.0.1:${gwPort}/app/x`, { headers: { cookie } });
    expect(res.status).toBe(200);
    expect(up.last().headers['x-session']).toMatch(/^ey/);
  }, 40_000);
});
