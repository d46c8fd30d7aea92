import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { cookieToken, startTestAuth, type TestAuth } from './support/auth-service.js';
import { routesYaml, startTestGateway, type TestGateway } from './support/gateway.js';
import { ROOT } from './support/process.js';
import { PROMETHEUS_BIN, PROMTOOL_BIN, promtool, startPrometheus, type PrometheusServer } from './support/prometheus.js';
import { groupingLabels, vectorSelectors, withBoolComparisons } from './support/promql.js';
import { freePort, startRedisServer, type RedisServer } from './support/redis-server.js';
import { startUpstream, type Upstream } from './support/upstream.js';
import { mintToken } from '@sessiongate/session';

// A real Prometheus scrapes a real gateway and auth service after a little real traffic;
// every dashboard query and every alert expression is then asked of it. A metric or label
// that does not exist, or a query that finds nothing where the traffic made something, fails.

const DASHBOARD = path.join(ROOT, 'deploy/grafana/sessiongate.json');
const RULES_DIR = path.join(ROOT, 'deploy/prometheus');
const ALERTS = path.join(RULES_DIR, 'alerts.yaml');
const GATEWAY_JOB = 'sessiongate';
const AUTH_JOB = 'sessiongate-auth';
/** Why the tests cannot run here, or null. */
const MISSING = PROMETHEUS_BIN && PROMTOOL_BIN ? null : 'prometheus/promtool not installed (Debian: apt-get install prometheus; .ci/run installs it)';

/**
 * Dashboard targets that may find no series after the traffic below, with why. Everything
 * else must find some.
 */
const MAY_BE_EMPTY: Record<string, string> = {};

/** What Grafana would put in place of the dashboard's variables. */
function substitute(expr: string): string {
  return expr
    .replace(/\$__rate_interval\b/g, '1m')
    .replace(/\$\{?auth_job\}?/g, AUTH_JOB)
    .replace(/\$\{?job\}?/g, GATEWAY_JOB)
    .replace(/\$\{?instance\}?/g, '.*');
}

interface Target {
  panel: string;
  expr: string;
}

interface Panel {
  type: string;
  title: string;
  datasource?: { uid?: string };
  targets?: { expr: string; refId: string }[];
}

const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as {
  panels: Panel[];
  templating: { list: { name: string; type: string; query: unknown }[] };
};
const alertRules = (parse(readFileSync(ALERTS, 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] }).groups.flatMap((g) => g.rules);

let redis: RedisServer | undefined;
let up: Upstream | undefined;
let auth: TestAuth | undefined;
let gw: TestGateway | undefined;
let prom: PrometheusServer | undefined;
let routesDir: string | undefined;

/**
 * Problems with one expression: metric names Prometheus never stored, matchers on labels
 * the metric does not carry, selectors with no series, grouping labels no selector has.
 */
async function problemsOf(p: PrometheusServer, where: string, expr: string, mayBeEmpty: boolean): Promise<string[]> {
  const out: string[] = [];
  const left = /\$\{?\w+/.exec(expr);
  if (left) out.push(`${where}: unknown dashboard variable ${left[0]}`);
  const names = new Set(await p.metricNames());
  const selectors = vectorSelectors(expr);
  if (selectors.length === 0) out.push(`${where}: no metric in ${expr}`);
  const labelsSeen = new Set<string>();
  for (const s of selectors) {
    if (!names.has(s.metric)) {
      out.push(`${where}: metric ${s.metric} does not exist`);
      continue;
    }
    const all = await p.series(s.metric);
    const keys = new Set(all.flatMap((l) => Object.keys(l)));
    for (const k of keys) labelsSeen.add(k);
    for (const m of s.matchers) if (!keys.has(m.name)) out.push(`${where}: ${s.metric} has no label ${m.name}`);
    if (!mayBeEmpty && (await p.series(s.text)).length === 0) out.push(`${where}: no series for ${s.text}`);
  }
  for (const l of groupingLabels(expr)) if (!labelsSeen.has(l)) out.push(`${where}: groups by ${l}, which no selector carries`);
  return out;
}

describe('the dashboard and the alerts against a real Prometheus', () => {
  beforeAll(async () => {
    if (MISSING) return;
    redis = await startRedisServer();
    up = await startUpstream('svc');
    auth = await startTestAuth({
      redisUrl: redis.url,
      users: { alice: { password: 'alice-password', roles: ['user'] } },
      env: { LOGIN_MAX_FAILURES_PER_ACCOUNT: '2', REDIS_COMMAND_TIMEOUT: '200ms' },
    });
    // a routes file that fails to reload, and a route whose upstream is a dead port
    routesDir = mkdtempSync(path.join(tmpdir(), 'sessiongate-prom-'));
    const broken = path.join(routesDir, 'routes.yaml');
    writeFileSync(broken, 'version: 1\nroutes: [\n');
    const dead = `http://127.0.0.1:${await freePort()}`;
    gw = await startTestGateway({
      redisUrl: redis.url,
      keyPrefix: auth.keyPrefix,
      keysJson: auth.keysJson,
      routes: routesYaml(
        { public: up.url },
        `  - name: down\n    prefix: /down\n    upstream: ${dead}\n    auth: none\n` +
          `  - name: shop\n    prefix: /shop\n    upstream: ${up.url}\n    sessionData: { namespace: cart, maxBytes: 64 }\n`,
      ),
      env: { SESSIONGATE_ROUTES: broken, REDIS_COMMAND_TIMEOUT: '200ms', SESSION_DATA_PORT: String(await freePort()) },
    });
    const dataUrl = `${await gw.gw.sessionData!.listen({ port: 0, host: '127.0.0.1' })}/_sessiongate/session-data`;
    await gw.gw.ops.listen({ port: 0, host: '127.0.0.1' });
    await auth.svc.ops.listen({ port: 0, host: '127.0.0.1' });
    const portOf = (s: { server: { address(): unknown } }) => (s.server.address() as { port: number }).port;
    prom = await startPrometheus({
      targets: [
        { job: GATEWAY_JOB, target: `127.0.0.1:${portOf(gw.gw.ops)}` },
        { job: AUTH_JOB, target: `127.0.0.1:${portOf(auth.svc.ops)}` },
      ],
      ruleFiles: [ALERTS],
    });

    // traffic: logins that succeed, fail and are throttled; allowed and refused requests;
    // an upstream that is down; a failed reload; a Redis that stops answering for a moment
    const alice = cookieToken(await auth.login('alice', 'alice-password'));
    for (let i = 0; i < 3; i++) await auth.login('alice', 'wrong-password');
    const get = (url: string, cookie?: string) => gw!.gw.app.inject({ url, headers: cookie ? { cookie: `sid=${cookie}` } : {} });
    const expectStatus = async (url: string, status: number, cookie?: string) => expect((await get(url, cookie)).statusCode).toBe(status);
    await expectStatus('/public/a', 200);
    await expectStatus('/api/orders/1', 200, alice);
    await expectStatus('/api/orders/1', 200, alice);
    await expectStatus('/api/orders/1', 401);
    await expectStatus('/api/orders/1', 401, mintToken("nobody"));
    await expectStatus('/admin/x', 403, alice);
    await expectStatus('/nowhere', 404);
    await expectStatus('/down/x', 502);
    // session data: one write kept, one over the namespace's cap
    await expectStatus('/shop/x', 200, alice);
    const xSession = up.last().headers['x-session'] as string;
    const write = (body: string) => fetch(dataUrl, { method: 'PATCH', headers: { 'x-session': xSession, 'content-type': 'application/json' }, body });
    expect((await write('{"id":"c-1"}')).status).toBe(200);
    expect((await write(JSON.stringify({ id: 'x'.repeat(100) }))).status).toBe(413);
    expect((await gw.gw.reload()).ok).toBe(false);
    redis.pause();
    try {
      await expectStatus('/api/orders/1', 503, mintToken("nobody"));
    } finally {
      redis.resume();
    }

    // wait until Prometheus holds the traffic, then two more scrapes for rates
    const deadline = Date.now() + 20_000;
    for (;;) {
      const seen = await prom.query(`sessiongate_session_lookups_total{job="${GATEWAY_JOB}",outcome="store_error"}`).catch(() => []);
      const logins = await prom.query(`sessiongate_auth_logins_total{job="${AUTH_JOB}",outcome="throttled"} > 0`).catch(() => []);
      if (seen.length && logins.length) break;
      if (Date.now() > deadline) throw new Error('Prometheus did not scrape the traffic in 20 s');
      await new Promise((r) => setTimeout(r, 250));
    }
    await new Promise((r) => setTimeout(r, 2500));
  }, 60_000);

  afterAll(async () => {
    await prom?.stop();
    await gw?.close();
    await auth?.close();
    await up?.close();
    await redis?.stop();
    if (routesDir) rmSync(routesDir, { recursive: true, force: true });
  }, 30_000);

  it('every dashboard query names metrics and labels that exist and finds the traffic', async (ctx) => {
    if (MISSING) ctx.skip(MISSING);
    const targets: Target[] = dashboard.panels
      .filter((p) => p.type !== 'row')
      .flatMap((p) => (p.targets ?? []).map((t) => ({ panel: `${p.title} [${t.refId}]`, expr: t.expr })));
    expect(targets.length).toBeGreaterThan(20);
    for (const key of Object.keys(MAY_BE_EMPTY)) expect(targets.map((t) => t.panel)).toContain(key);
    const problems: string[] = [];
    for (const t of targets) {
      const expr = substitute(t.expr);
      const mayBeEmpty = t.panel in MAY_BE_EMPTY;
      problems.push(...(await problemsOf(prom!, t.panel, expr, mayBeEmpty)));
      try {
        const result = await prom!.query(expr);
        if (!mayBeEmpty && result.length === 0) problems.push(`${t.panel}: no series for ${expr}`);
      } catch (err) {
        problems.push(`${t.panel}: ${(err as Error).message}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('the dashboard has a Prometheus datasource variable, job and instance variables, and every panel uses them', () => {
    const vars = new Map(dashboard.templating.list.map((v) => [v.name, v]));
    expect(vars.get('datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    for (const name of ['job', 'instance', 'auth_job']) expect(vars.get(name)?.type).toBe('query');
    const panels = dashboard.panels.filter((p) => p.type !== 'row');
    expect(panels.filter((p) => p.datasource?.uid !== '${datasource}').map((p) => p.title)).toEqual([]);
    // every gateway query is narrowed to the chosen job and instances, every auth one to its job
    const unscoped = panels
      .flatMap((p) => (p.targets ?? []).map((t) => ({ title: p.title, expr: t.expr })))
      .filter(({ expr }) => vectorSelectors(expr).some((s) => !s.matchers.some((m) => m.name === 'job' && /\$(auth_)?job/.test(m.value))));
    expect(unscoped.map((u) => u.title)).toEqual([]);
  });

  it('every alert loads, evaluates without error, and its expression finds the series it watches', async (ctx) => {
    if (MISSING) ctx.skip(MISSING);
    // rules are evaluated once a second: wait for one round after the traffic
    const deadline = Date.now() + 10_000;
    let rules = await prom!.rules();
    while (rules.some((r) => r.lastEvaluation.startsWith('0001')) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      rules = await prom!.rules();
    }
    expect(rules.map((r) => r.name).sort()).toEqual(alertRules.map((r) => r.alert).sort());
    expect(rules.filter((r) => r.health !== 'ok').map((r) => `${r.name}: ${r.health} ${r.lastError ?? ''}`)).toEqual([]);
    const problems: string[] = [];
    for (const rule of alertRules) {
      problems.push(...(await problemsOf(prom!, rule.alert, rule.expr, false)));
      // with each threshold turned into `bool`, the expression answers for what it watches
      // whether or not the alert fires now; its joins must still match
      const watched = withBoolComparisons(rule.expr);
      try {
        if ((await prom!.query(watched)).length === 0) problems.push(`${rule.alert}: no series for ${watched}`);
      } catch (err) {
        problems.push(`${rule.alert}: ${(err as Error).message}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('promtool accepts the rules and their unit tests pass', (ctx) => {
    if (MISSING) ctx.skip(MISSING);
    const check = promtool(['check', 'rules', 'alerts.yaml'], RULES_DIR);
    expect(check.output).toContain('SUCCESS');
    expect(check.code).toBe(0);
    const tests = promtool(['test', 'rules', 'alerts.test.yaml'], RULES_DIR);
    expect(tests.output).toContain('SUCCESS');
    expect(tests.code).toBe(0);
  });
});
