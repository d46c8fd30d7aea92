import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  alive,
  commandOf,
  demoEnv,
  demoPasswords,
  descendants,
  killDemo,
  runDirOf,
  startDemo as spawnDemo,
  waitForDemoReady,
  waitForOutput,
  type Demo,
} from './support/demo-process.js';
import { assertBuilt } from './support/process.js';
import { freePort } from './support/redis-server.js';

// `npm start` as a user runs it: scripts/demo.mjs (the build step skipped: the suite is
// built), the README's curl path over real HTTP, then Ctrl-C and no process left behind.

const running: Demo[] = [];

function startDemo(args: string[], env: NodeJS.ProcessEnv): Demo {
  const demo = spawnDemo(env, args);
  running.push(demo);
  return demo;
}

/** A cookie-jar client for the gateway, as `curl -c jar -b jar` is. */
function client(base: string) {
  let cookie: string | null = null;
  return async (method: string, p: string, o: { json?: unknown; form?: Record<string, string>; origin?: boolean } = {}) => {
    const headers: Record<string, string> = {};
    if (cookie) headers.cookie = cookie;
    if (o.json !== undefined) headers['content-type'] = 'application/json';
    if (o.form !== undefined) headers['content-type'] = 'application/x-www-form-urlencoded';
    if (o.origin) headers.origin = base;
    const payload = o.json !== undefined ? JSON.stringify(o.json) : o.form !== undefined ? new URLSearchParams(o.form).toString() : undefined;
    const res = await fetch(base + p, { method, headers, body: payload, redirect: 'manual' });
    const set = res.headers.getSetCookie().find((c) => c.startsWith('sid='));
    if (set) cookie = /Max-Age=0|Expires=Thu, 01 Jan 1970/i.test(set) ? null : set.split(';')[0]!;
    const text = await res.text();
    let body: any = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: res.status, body, setCookie: set, location: res.headers.get('location') };
  };
}

/** The tenant the Node example's /app page shows for this client's session. */
async function tenantOn(c: ReturnType<typeof client>): Promise<string | undefined> {
  const page = await c('GET', '/app');
  expect(page.status).toBe(200);
  return /<strong id="tenant">([^<]*)<\/strong>/.exec(page.body as string)?.[1];
}

async function stopAndCheck(demo: Demo, pids: number[], signal: NodeJS.Signals) {
  demo.child.kill(signal);
  const exit = await demo.exited;
  // children are in their own process groups: nothing may be left, not even for a moment
  const left = pids.filter(alive).map((p) => `${p} ${commandOf(p)}`);
  expect(left, `processes left after ${signal}`).toEqual([]);
  return exit;
}

beforeAll(() => assertBuilt());

afterEach(async () => {
  for (const d of running.splice(0)) {
    if (d.child.exitCode === null && d.child.signalCode === null) killDemo(d);
  }
});

describe('npm start (scripts/demo.mjs)', () => {
  it('runs the stack on REDIS_URL, answers the README curl path, and Ctrl-C leaves nothing behind', async () => {
    const demo = startDemo([], demoEnv({ REDIS_URL: inject('redisUrl') }));
    const base = await waitForDemoReady(demo);
    const out = demo.output();
    const pids = descendants(demo.child.pid!);
    const pw = demoPasswords(out);
    expect(Object.keys(pw).sort()).toEqual(['alice', 'bob', 'dave']);
    // readable: what runs where, with the services the issue names
    for (const what of ['gateway', 'gateway metrics', 'session data', 'auth service', 'node-upstream', 'python-upstream', 'redis', 'logs']) {
      expect(out).toMatch(new RegExp(`^ {2}${what} +\\S`, 'm'));
    }
    expect(out).toMatch(/from REDIS_URL/);
    expect(out).toMatch(/COOKIE_SECURE=false/);
    // auth, node-upstream, python-upstream, gateway: no redis-server of its own
    expect(pids.map(commandOf).join('\n')).not.toMatch(/redis-server/);
    expect(pids.length).toBeGreaterThanOrEqual(4);
    // the key material never reaches the terminal
    const runDir = runDirOf(out);
    const keys = JSON.parse(readFileSync(path.join(runDir, 'secrets/x-session-keys.json'), 'utf8')) as { keys: { k: string }[] };
    expect(out).not.toContain(keys.keys[0]!.k);

    const alice = client(base);
    const login = await alice('POST', '/auth/login', { json: { username: 'alice', password: pw.alice } });
    expect(login.status).toBe(204);
    expect(login.setCookie).toMatch(/^sid=[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{4};/);
    expect(login.setCookie).toMatch(/HttpOnly/i);

    const order = await alice('GET', '/api/orders/1');
    expect(order.status).toBe(200);
    expect(order.body).toMatchObject({ service: 'node-upstream', path: '/orders/1', user: { sub: 'alice', roles: ['user'] }, order: { id: '1' } });

    expect((await alice('GET', '/admin')).status).toBe(403);
    expect((await alice('GET', '/auth/me')).body).toMatchObject({ sub: 'alice', roles: ['user'] });
    expect((await alice('GET', '/api/reports/monthly')).status).toBe(403);
    expect((await alice('GET', '/public/hello')).body).toMatchObject({ service: 'node-upstream', user: null });

    // /app keeps the tenant alice picks in her session, through the gateway's session data endpoint
    expect(await tenantOn(alice)).toBe('(none chosen)');
    expect(await alice('POST', '/app/tenant', { form: { tenant: 'initech' }, origin: true })).toMatchObject({ status: 303, location: '/app' });
    expect(await tenantOn(alice)).toBe('initech');
    expect(await tenantOn(alice)).toBe('initech');

    expect((await alice('POST', '/auth/logout', { origin: true })).status).toBe(204);
    const after = await alice('GET', '/api/orders/1');
    expect(after.status).toBe(401);
    expect(after.body).toMatchObject({ error: 'unauthenticated' });
    // a new session starts without it
    expect((await alice('POST', '/auth/login', { json: { username: 'alice', password: pw.alice } })).status).toBe(204);
    expect(await tenantOn(alice)).toBe('(none chosen)');

    const dave = client(base);
    expect((await dave('POST', '/auth/login', { json: { username: 'dave', password: pw.dave } })).status).toBe(204);
    const report = await dave('GET', '/api/reports/monthly');
    expect(report.status).toBe(200);
    expect(report.body).toMatchObject({ service: 'python-upstream', path: '/api/reports/monthly', user: { sub: 'dave', roles: ['analyst', 'billing'] } });
    expect((await dave('GET', '/api/orders/1')).status).toBe(403);

    const bob = client(base);
    expect((await bob('POST', '/auth/login', { json: { username: 'bob', password: pw.bob } })).status).toBe(204);
    expect((await bob('GET', '/admin')).body).toMatchObject({ service: 'node-upstream', user: { sub: 'bob' } });

    const exit = await stopAndCheck(demo, pids, 'SIGINT');
    expect(exit).toEqual({ code: 0, signal: null });
    expect(demo.output()).toMatch(/sessiongate demo stopped/);
    // keys, users and generated files are removed; the logs stay for a look afterwards
    expect(existsSync(path.join(runDir, 'secrets'))).toBe(false);
    expect(readFileSync(path.join(runDir, 'logs/gateway.log'), 'utf8')).toMatch(/shutdown complete/);
    rmSync(runDir, { recursive: true, force: true });
  }, 90_000);

  it('--eddsa: starts a private redis-server, verifies through the JWKS, and stops everything when a service dies', async () => {
    const env = demoEnv({});
    delete env.REDIS_URL;
    const demo = startDemo(['--eddsa'], env);
    const base = await waitForDemoReady(demo);
    const out = demo.output();
    const pids = descendants(demo.child.pid!);
    const commands = pids.map((p) => [p, commandOf(p)] as const);
    expect(commands.filter(([, c]) => /redis-server/.test(c))).toHaveLength(1);
    expect(out).toMatch(/^ {2}python-upstream +not started +it verifies HS256 only/m);
    expect(out).toMatch(/a private redis-server, stopped on exit/);

    const jwks = (await (await fetch(`${base}/.well-known/jwks.json`)).json()) as { keys: { alg: string; d?: string }[] };
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ alg: 'EdDSA', kty: 'OKP' });
    expect(jwks.keys[0]!.d).toBeUndefined();

    const alice = client(base);
    expect((await alice('POST', '/auth/login', { json: { username: 'alice', password: demoPasswords(out).alice } })).status).toBe(204);
    expect((await alice('GET', '/api/orders/7')).body).toMatchObject({ user: { sub: 'alice' }, order: { id: '7' } });
    // the gateway verifies the example's write with its EdDSA key too
    expect((await alice('POST', '/app/tenant', { form: { tenant: 'acme' }, origin: true })).status).toBe(303);
    expect(await tenantOn(alice)).toBe('acme');

    // a service dying on its own takes the stack down, with its last lines shown
    const [upstreamPid] = commands.find(([, c]) => c.includes('node-upstream/server.mjs'))!;
    process.kill(upstreamPid, 'SIGKILL');
    const exit = await demo.exited;
    expect(exit.code).toBe(1);
    expect(demo.output()).toMatch(/node-upstream stopped unexpectedly \(killed by SIGKILL\)\. Its last lines:\n {4}node-upstream listening on/);
    expect(pids.filter(alive).map((p) => `${p} ${commandOf(p)}`)).toEqual([]);
    rmSync(runDirOf(out), { recursive: true, force: true });
  }, 90_000);

  it('stops with a message naming both ways to get Redis when there is neither REDIS_URL nor redis-server', async () => {
    const emptyBin = mkdtempSync(path.join(tmpdir(), 'sessiongate-nopath-'));
    try {
      const demo = startDemo([], demoEnv({ PATH: emptyBin }));
      const exit = await demo.exited;
      expect(exit.code).toBe(1);
      expect(demo.output()).toMatch(/Redis is needed/);
      expect(demo.output()).toMatch(/REDIS_URL=redis:\/\/127\.0\.0\.1:6379 npm start/);
      expect(demo.output()).toMatch(/install redis-server/);
    } finally {
      rmSync(emptyBin, { recursive: true, force: true });
    }
  });

  it('says at once, loudly, that the Python upstream is not started when python3 is missing', async () => {
    // REDIS_URL given, so nothing is needed from PATH but python3, which this PATH lacks
    const emptyBin = mkdtempSync(path.join(tmpdir(), 'sessiongate-nopython-'));
    try {
      const demo = startDemo([], demoEnv({ REDIS_URL: inject('redisUrl'), PATH: emptyBin }));
      await waitForOutput(demo, /^sessiongate demo ready: /m);
      const out = demo.output();
      const warning = out.indexOf('WARNING: python3 is not on PATH, so the Python example upstream is NOT started');
      expect(warning).toBeGreaterThanOrEqual(0);
      expect(out).toMatch(/\/api\/reports will answer 502/);
      // before anything else is started, not buried in the welcome text
      expect(warning).toBeLessThan(out.indexOf('What runs where'));
      expect(out).toMatch(/^ {2}python-upstream +not started +python3 is not on PATH/m);
      const pids = descendants(demo.child.pid!);
      expect((await stopAndCheck(demo, pids, 'SIGINT')).code).toBe(0);
      rmSync(runDirOf(out), { recursive: true, force: true });
    } finally {
      rmSync(emptyBin, { recursive: true, force: true });
    }
  }, 90_000);

  it('refuses a port already in use, naming it and the way out', async () => {
    const port = await freePort();
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', r));
    try {
      const demo = startDemo([], demoEnv({ REDIS_URL: inject('redisUrl'), DEMO_BASE_PORT: String(port) }));
      const exit = await demo.exited;
      expect(exit.code).toBe(1);
      expect(demo.output()).toContain(`port ${port} (gateway)`);
      expect(demo.output()).toMatch(/DEMO_BASE_PORT=0/);
    } finally {
      blocker.close();
    }
  });
});
