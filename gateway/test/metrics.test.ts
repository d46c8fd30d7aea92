import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestGateway, routesYaml, type TestGateway } from '../../test/support/gateway.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';

// The metrics listener after real traffic: each series moves by exactly what happened.

let up: Upstream;
let t: TestGateway;

function parse(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

async function scrape(): Promise<Map<string, number>> {
  // onResponse hooks run after inject() resolves: let them finish
  await new Promise((r) => setTimeout(r, 20));
  const res = await t.gw.ops.inject({ url: '/metrics' });
  expect(res.statusCode).toBe(200);
  expect(res.headers['content-type']).toMatch(/text\/plain/);
  return parse(res.body);
}

function delta(a: Map<string, number>, b: Map<string, number>, key: string): number {
  return (b.get(key) ?? 0) - (a.get(key) ?? 0);
}

beforeAll(async () => {
  up = await startUpstream('svc');
  const dir = mkdtempSync(path.join(tmpdir(), 'sessiongate-metrics-'));
  const broken = path.join(dir, 'routes.yaml');
  writeFileSync(broken, 'version: 1\nroutes: [\n');
  t = await startTestGateway({ redisUrl: inject('redisUrl'), routes: routesYaml({ public: up.url }), env: { SESSIONGATE_ROUTES: broken } });
});

afterAll(async () => {
  await t?.close();
  await up?.close();
});

describe('metrics', () => {
  it('are not served on the public listener', async () => {
    const res = await t.gw.app.inject({ url: '/metrics' });
    expect(res.statusCode).toBe(404);
    expect(res.body).not.toContain('sessiongate_');
  });

  it('count requests, lookups by outcome and source, and decisions', async () => {
    const alice = await t.login('alice', ['user']);
    const before = await scrape();
    const get = (url: string, cookie?: string) => t.gw.app.inject({ url, headers: cookie ? { cookie: `sid=${cookie}` } : {} });
    await get('/public/m');
    await get('/api/orders/m', alice);
    await get('/api/orders/m', alice);
    await get('/api/orders/m');
    await get('/api/orders/m', 'A'.repeat(43));
    await get('/admin/m', alice);
    await get('/nowhere');
    const after = await scrape();

    expect(delta(before, after, 'sessiongate_requests_total{route="orders",method="GET",status_class="2xx"}')).toBe(2);
    expect(delta(before, after, 'sessiongate_requests_total{route="orders",method="GET",status_class="4xx"}')).toBe(2);
    expect(delta(before, after, 'sessiongate_requests_total{route="public",method="GET",status_class="2xx"}')).toBe(1);
    expect(delta(before, after, 'sessiongate_requests_total{route="(none)",method="GET",status_class="4xx"}')).toBe(1);
    expect(delta(before, after, 'sessiongate_session_lookups_total{outcome="valid",source="redis"}')).toBe(1);
    expect(delta(before, after, 'sessiongate_session_lookups_total{outcome="valid",source="cache"}')).toBe(2);
    expect(delta(before, after, 'sessiongate_session_lookups_total{outcome="missing",source="none"}')).toBe(1);
    expect(delta(before, after, 'sessiongate_session_lookups_total{outcome="expired",source="redis"}')).toBe(1);
    expect(delta(before, after, 'sessiongate_policy_decisions_total{route="orders",decision="allow"}')).toBe(2);
    expect(delta(before, after, 'sessiongate_policy_decisions_total{route="orders",decision="unauthenticated"}')).toBe(2);
    expect(delta(before, after, 'sessiongate_policy_decisions_total{route="admin",decision="forbidden"}')).toBe(1);
    expect(delta(before, after, 'sessiongate_request_duration_seconds_count{route="orders"}')).toBe(4);
    expect(delta(before, after, 'sessiongate_redis_command_duration_seconds_count{command="get",result="ok"}')).toBe(2);
    expect(after.get('sessiongate_active_sessions')).toBeGreaterThanOrEqual(1);
    expect(after.get('sessiongate_session_cache_active')).toBe(1);
    // Node's default metrics, in the same registry
    expect(after.has('process_resident_memory_bytes')).toBe(true);
  });

  it('count failed reloads, keeping the last success time', async () => {
    const before = await scrape();
    // the harness passed routes directly; its config names a file that is invalid
    const r = await t.gw.reload();
    expect(r.ok).toBe(false);
    const after = await scrape();
    expect(delta(before, after, 'sessiongate_config_reloads_total{result="failure"}')).toBe(1);
    expect(after.get('sessiongate_config_last_reload_success_timestamp_seconds')).toBe(before.get('sessiongate_config_last_reload_success_timestamp_seconds'));
  });

  it('two gateways in one process keep separate registries', async () => {
    const other = await startTestGateway({ redisUrl: inject('redisUrl'), routes: routesYaml({ public: up.url }) });
    const key = 'sessiongate_requests_total{route="public",method="GET",status_class="2xx"}';
    try {
      const aBefore = await scrape();
      await other.gw.app.inject({ url: '/public/x' });
      await new Promise((r) => setTimeout(r, 20));
      const b = parse((await other.gw.ops.inject({ url: '/metrics' })).body);
      expect(b.get(key)).toBe(1);
      expect((await scrape()).get(key)).toBe(aBefore.get(key));
    } finally {
      await other.close();
    }
  });
});
