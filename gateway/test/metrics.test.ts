import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { startTestGateway, routesYaml, type TestGateway } from '../../test/support/gateway.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';
import { mintToken, parseRecord, serializeRecord, sessionRef } from '@sessiongate/session';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

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

const get = (url: string, cookie?: string) => t.gw.app.inject({ url, headers: cookie ? { cookie: `sid=${cookie}` } : {} });

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
    await get('/public/m');
    await get('/api/orders/m', alice);
    await get('/api/orders/m', alice);
    await get('/api/orders/m');
    await get('/api/orders/m', mintToken('nobody'));
    await get('/admin/m', alice);
    await get('/nowhere');
    const after = await scrape();

    expect(delta(before, after, 'sessiongate_requests_total{route="orders",method="GET",status_class="2xx",code="2xx"}')).toBe(2);
    expect(delta(before, after, 'sessiongate_requests_total{route="orders",method="GET",status_class="4xx",code="401"}')).toBe(2);
    expect(delta(before, after, 'sessiongate_requests_total{route="admin",method="GET",status_class="4xx",code="403"}')).toBe(1);
    expect(delta(before, after, 'sessiongate_requests_total{route="public",method="GET",status_class="2xx",code="2xx"}')).toBe(1);
    expect(delta(before, after, 'sessiongate_requests_total{route="(none)",method="GET",status_class="4xx",code="404"}')).toBe(1);
    expect(delta(before, after, 'sessiongate_session_lookups_total{outcome="valid",source="redis"}')).toBe(1);
    expect(delta(before, after, 'sessiongate_session_lookups_total{outcome="valid",source="cache"}')).toBe(2);
    expect(delta(before, after, 'sessiongate_session_lookups_total{outcome="no_cookie",source="none"}')).toBe(1);
    expect(delta(before, after, 'sessiongate_session_lookups_total{outcome="missing",source="redis"}')).toBe(1);
    expect(delta(before, after, 'sessiongate_policy_decisions_total{route="orders",decision="allow"}')).toBe(2);
    expect(delta(before, after, 'sessiongate_policy_decisions_total{route="orders",decision="unauthenticated"}')).toBe(2);
    expect(delta(before, after, 'sessiongate_policy_decisions_total{route="admin",decision="forbidden"}')).toBe(1);
    expect(delta(before, after, 'sessiongate_request_duration_seconds_count{route="orders"}')).toBe(4);
    expect(delta(before, after, 'sessiongate_redis_command_duration_seconds_count{command="get",result="ok"}')).toBe(2);
    expect(after.get('sessiongate_active_sessions')).toBeGreaterThanOrEqual(1);
    expect(after.get('sessiongate_session_cache_active')).toBe(1);
    expect(after.get('sessiongate_session_cache_enabled')).toBe(1);
    // Node's default metrics, in the same registry
    expect(after.has('process_resident_memory_bytes')).toBe(true);
  });

  it('report the version and Node.js version', async () => {
    const after = await scrape();
    expect(after.get(`sessiongate_build_info{version="${VERSION}",node_version="${process.version}"}`)).toBe(1);
  });

  it('give 401, 403, 404, 429 and 503 a code of their own and count other statuses by class', async () => {
    // the upstream answers the status named in the path
    up.respond((req, res) => {
      res.statusCode = Number(/\/(\d{3})$/.exec(req.url ?? '')?.[1] ?? 200);
      res.end();
    });
    try {
      const before = await scrape();
      for (const status of [200, 204, 401, 403, 404, 418, 429, 500, 503]) expect((await get(`/public/status/${status}`)).statusCode).toBe(status);
      const after = await scrape();
      const count = (cls: string, code: string) => delta(before, after, `sessiongate_requests_total{route="public",method="GET",status_class="${cls}",code="${code}"}`);
      expect(count('2xx', '2xx')).toBe(2);
      expect(count('4xx', '401')).toBe(1);
      expect(count('4xx', '403')).toBe(1);
      expect(count('4xx', '404')).toBe(1);
      expect(count('4xx', '429')).toBe(1);
      expect(count('4xx', '4xx')).toBe(1);
      expect(count('5xx', '5xx')).toBe(1);
      expect(count('5xx', '503')).toBe(1);
    } finally {
      up.respond((_req, res) => res.end('{}'));
    }
  });

  it('tell a missing cookie, a malformed one, an unknown or ended session and an expired one apart', async () => {
    const ended = await t.login('bob', ['user']);
    // logged out (or revoked, or idle-expired): the key is gone, as for a token never issued
    await t.redis.del(t.store.keys.session(sessionRef(ended)));
    // a record still stored past its absolute expiry: the one end the gateway can see
    const over = await t.login('carol', ['user']);
    const key = t.store.keys.session(sessionRef(over));
    const record = parseRecord((await t.redis.get(key))!, sessionRef(over).sid);
    await t.redis.set(key, serializeRecord({ ...record, absoluteExpiresAt: Date.now() - 1000 }), 'KEEPTTL');
    const before = await scrape();
    expect((await get('/api/orders/m')).statusCode).toBe(401);
    expect((await get('/api/orders/m', 'not-a-token')).statusCode).toBe(401);
    expect((await t.gw.app.inject({ url: '/api/orders/m', headers: { cookie: `sid=${mintToken("nobody")}; sid=${mintToken("nobody")}` } })).statusCode).toBe(401);
    expect((await get('/api/orders/m', mintToken("nobody"))).statusCode).toBe(401);
    expect((await get('/api/orders/m', ended)).statusCode).toBe(401);
    expect((await get('/api/orders/m', over)).statusCode).toBe(401);
    const after = await scrape();
    const count = (outcome: string, source: string) => delta(before, after, `sessiongate_session_lookups_total{outcome="${outcome}",source="${source}"}`);
    expect(count('no_cookie', 'none')).toBe(1);
    expect(count('malformed', 'none')).toBe(2);
    expect(count('missing', 'redis')).toBe(2);
    expect(count('expired', 'redis')).toBe(1);
    expect(count('invalid', 'none') + count('invalid', 'redis') + count('expired', 'none')).toBe(0);
    // the help text says what each outcome means
    const help = (await t.gw.ops.inject({ url: '/metrics' })).body.split('\n').find((l) => l.startsWith('# HELP sessiongate_session_lookups_total'));
    for (const outcome of ['valid', 'no_cookie', 'malformed', 'missing', 'expired', 'invalid', 'store_error']) expect(help).toContain(outcome);
  });

  it('count failed reloads, keeping the last success time', async () => {
    const before = await scrape();
    // the harness passed routes directly; its config names a file that is invalid
    const r = await t.gw.reload();
    expect(r.ok).toBe(false);
    const after = await scrape();
    expect(before.get('sessiongate_config_last_reload_successful')).toBe(1);
    expect(delta(before, after, 'sessiongate_config_reloads_total{result="failure"}')).toBe(1);
    expect(after.get('sessiongate_config_last_reload_successful')).toBe(0);
    expect(after.get('sessiongate_config_last_reload_success_timestamp_seconds')).toBe(before.get('sessiongate_config_last_reload_success_timestamp_seconds'));
  });

  it('two gateways in one process keep separate registries', async () => {
    // the other one runs without the cache: it says so, and the channel gauge reads 0 by design
    const other = await startTestGateway({ redisUrl: inject('redisUrl'), routes: routesYaml({ public: up.url }), env: { SESSION_CACHE: 'false' } });
    const key = 'sessiongate_requests_total{route="public",method="GET",status_class="2xx",code="2xx"}';
    try {
      const aBefore = await scrape();
      await other.gw.app.inject({ url: '/public/x' });
      await new Promise((r) => setTimeout(r, 20));
      const b = parse((await other.gw.ops.inject({ url: '/metrics' })).body);
      expect(b.get(key)).toBe(1);
      expect(b.get('sessiongate_session_cache_enabled')).toBe(0);
      expect(b.get('sessiongate_session_cache_active')).toBe(0);
      expect((await scrape()).get(key)).toBe(aBefore.get(key));
    } finally {
      await other.close();
    }
  });
});
