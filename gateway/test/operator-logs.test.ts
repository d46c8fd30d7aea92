import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeySet } from '@sessiongate/session';
import { freePort, startRedisServer, type RedisServer } from '../../test/support/redis-server.js';
import { assertBuilt, startService, type Service } from '../../test/support/process.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';

// What an operator reads: a real `sessiongate gateway` process started while its Redis is
// down, its log captured. The outage is said once, plainly, not once per request with the
// Redis client's internals, and its end is said too; refused requests log their path.

const dir = mkdtempSync(path.join(tmpdir(), 'sessiongate-oplogs-'));
let up: Upstream;
let svc: Service | undefined;
let redis: RedisServer | undefined;

beforeAll(async () => {
  assertBuilt();
  up = await startUpstream('up');
});

afterAll(async () => {
  await svc?.stop();
  await redis?.stop();
  await up?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface LogLine {
  level: number;
  msg: string;
  path?: string;
  status?: number;
  route?: string;
}

const lines = (s: Service): LogLine[] =>
  s
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);

describe('gateway logs for operators', () => {
  it('says once that Redis is not reachable, answers 503 without repeating it, says when it is back, and logs refused paths', async () => {
    const redisPort = await freePort();
    const port = await freePort();
    const routes = path.join(dir, 'routes.yaml');
    writeFileSync(routes, `version: 1\nroutes:\n  - name: orders\n    prefix: /api/orders\n    upstream: ${up.url}\n    roles: [user]\n`);
    svc = startService(['gateway'], {
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      SESSIONGATE_REDIS_PREFIX: `sgtest:${randomUUID()}:`,
      SESSIONGATE_ROUTES: routes,
      X_SESSION_KEYS: JSON.stringify(generateKeySet('HS256')),
      GATEWAY_HOST: '127.0.0.1',
      GATEWAY_PORT: String(port),
      GATEWAY_METRICS_PORT: '0',
    });
    await svc.waitFor(/sessiongate gateway ready/);
    await svc.waitFor(/redis is not reachable/);

    const cookie = `sid=${'a'.repeat(43)}.abcd`;
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/api/orders/${i}?q=secret`, { headers: { cookie } });
      expect(res.status).toBe(503);
      expect(await res.json()).toMatchObject({ error: 'session_store_unavailable' });
    }
    // the log is written asynchronously: wait for the last request's line
    await svc.waitFor(/"path":"\/api\/orders\/4"/);
    const during = lines(svc);
    const outage = during.filter((l) => /redis is not reachable/.test(l.msg));
    expect(outage).toHaveLength(1);
    expect(outage[0]!.msg).toBe('redis is not reachable (ECONNREFUSED): protected routes answer 503 until it is');
    // no Redis client internals, at any level shown by default
    expect(svc.output()).not.toMatch(/Stream isn't writeable|enableOfflineQueue/);
    const refused = during.filter((l) => l.msg === 'request');
    expect(refused.map((l) => [l.route, l.path, l.status])).toEqual([0, 1, 2, 3, 4].map((i) => ['orders', `/api/orders/${i}`, 503]));

    // Redis comes up on that port: said once, and protected routes answer again (401: no such session)
    redis = await startRedisServer({ port: redisPort });
    await svc.waitFor(/redis is reachable again/, 15_000);
    const after = await fetch(`http://127.0.0.1:${port}/api/orders/9`, { headers: { cookie } });
    expect(after.status).toBe(401);
    await svc.waitFor(/"status":401/);
    const last = lines(svc).filter((l) => l.msg === 'request').at(-1)!;
    expect([last.path, last.status]).toEqual(['/api/orders/9', 401]);
    expect(lines(svc).filter((l) => /redis is not reachable/.test(l.msg))).toHaveLength(1);
  }, 40_000);
});
