import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { generateKeySet } from '@sessiongate/session';
import { KeyLayout, SessionStore, createRedisClient, waitUntilReady, type RedisClient } from '@sessiongate/session';
import { assertBuilt } from '../../test/support/process.js';
import { routesYaml } from '../../test/support/gateway.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';
import { freshGet, sample, sampleSum, startWorkerGateway, type WorkerGateway } from '../../test/support/workers.js';

// The primary's metrics port serves the sum over both workers: each request counted once,
// and gauges combined by what they mean (a session both workers saw is one active session).

const dir = mkdtempSync(path.join(tmpdir(), 'sg-workers-metrics-'));
const prefix = `sgtest:${randomUUID()}:`;
let up: Upstream;
let redis: RedisClient;
let gw: WorkerGateway;

beforeAll(async () => {
  assertBuilt();
  up = await startUpstream('up');
  redis = createRedisClient({ connection: { mode: 'standalone', url: inject('redisUrl') } });
  await waitUntilReady(redis, 5000);
  const routesFile = path.join(dir, 'routes.yaml');
  writeFileSync(routesFile, routesYaml({ public: up.url }));
  gw = await startWorkerGateway(2, {
    REDIS_URL: inject('redisUrl'),
    SESSIONGATE_REDIS_PREFIX: prefix,
    X_SESSION_KEYS: JSON.stringify(generateKeySet('HS256')),
    SESSIONGATE_ROUTES: routesFile,
    SESSIONGATE_WATCH_ROUTES: 'false',
    SESSION_CACHE_TTL: '60s',
  });
}, 60_000);

afterAll(async () => {
  await gw?.close();
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length) await redis.del(...keys);
  await redis?.quit();
  await up?.close();
  rmSync(dir, { recursive: true, force: true });
});

it('counts every request once across both workers, and combines gauges by meaning', async () => {
  const store = new SessionStore(redis, new KeyLayout(prefix));
  const s = await store.create({ sub: 'ann', roles: ['user'], claims: {}, idleTimeoutMs: 600_000, absoluteTimeoutMs: 3_600_000 });
  const cookie = `sid=${s.token}`;
  const m0 = await gw.metrics();
  // the primary is the only one on the metrics port: its own metrics are in every scrape
  expect(sample(m0, 'sessiongate_workers_ready')).toBe(2);
  expect(sample(m0, 'sessiongate_worker_restarts_total')).toBe(0);
  expect(sampleSum(m0, 'sessiongate_requests_total')).toBe(0);

  const before = gw.lines().length;
  const N = 30;
  const M = 11;
  for (let i = 0; i < N; i++) expect((await freshGet(gw.port, '/api/orders/1', { cookie })).status).toBe(200);
  for (let i = 0; i < M; i++) expect((await freshGet(gw.port, '/api/orders/1')).status).toBe(401);
  await new Promise((r) => setTimeout(r, 200));
  const served = gw.lines().slice(before).filter((l) => l.msg === 'request');
  expect(new Set(served.map((l) => l.pid))).toEqual(new Set(gw.workerPids()));

  for (let scrape = 0; scrape < 4; scrape++) {
    const m = await gw.metrics();
    expect(sample(m, 'sessiongate_workers_ready')).toBe(2);
    expect(sample(m, 'sessiongate_requests_total', 'route="orders",method="GET",status_class="2xx",code="2xx"')).toBe(N);
    expect(sample(m, 'sessiongate_requests_total', 'route="orders",method="GET",status_class="4xx",code="401"')).toBe(M);
    expect(sampleSum(m, 'sessiongate_requests_total')).toBe(N + M);
    expect(sample(m, 'sessiongate_request_duration_seconds_count', 'route="orders"')).toBe(N + M);
    expect(sampleSum(m, 'sessiongate_session_lookups_total')).toBe(N + M);
    // one session, seen by both workers: active once, cached once per worker
    expect(sample(m, 'sessiongate_active_sessions')).toBe(1);
    expect(sample(m, 'sessiongate_session_cache_entries')).toBe(2);
    expect(sample(m, 'sessiongate_session_cache_enabled')).toBe(1);
    expect(sample(m, 'sessiongate_session_cache_active')).toBe(1);
    expect(sample(m, 'sessiongate_config_last_reload_successful')).toBe(1);
    expect(m).toMatch(/^sessiongate_build_info\{version="[^"]+",node_version="v[\d.]+"\} 1$/m);
    // one family per name: Prometheus rejects a repeated one
    const families = [...m.matchAll(/^# TYPE (\S+)/gm)].map((x) => x[1]);
    expect(families.length).toBe(new Set(families).size);
  }

  const ready = await fetch(`http://127.0.0.1:${gw.metricsPort}/readyz`);
  expect(ready.status).toBe(200);
  expect(await ready.json()).toEqual({ status: 'ready', checks: { workers: true } });
});
