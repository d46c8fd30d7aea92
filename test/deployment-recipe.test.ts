import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, ROOT, assertBuilt, startService, type Service } from './support/process.js';
import { freePort, startRedisServer, type RedisServer } from './support/redis-server.js';

// docs/deployment.md as an operator follows it: the blocks marked `recipe` are read from the
// page (so the page and this test cannot drift), shell steps run in bash with `sessiongate`
// on PATH as `npm install -g ./gateway` puts it, files are written where the page says
// (under a temporary root), the systemd units' ExecStart runs with exactly their
// EnvironmentFile, and it ends with a login through the gateway and a request that reaches
// a real upstream, which verifies X-Session against the gateway's JWKS.

const DOC = path.join(ROOT, 'docs/deployment.md');

interface Block {
  lang: string;
  file: string | null;
  text: string;
}

function recipeBlocks(markdown: string): Block[] {
  const out: Block[] = [];
  for (const m of markdown.matchAll(/^```(\w+) recipe(?: file=(\S+))?\n([\s\S]*?)^```$/gm)) {
    out.push({ lang: m[1]!, file: m[2] ?? null, text: m[3]! });
  }
  return out;
}

/** KEY=VALUE lines as systemd's EnvironmentFile reads them (comments, optional quotes). */
function parseEnvFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!m) continue;
    const v = m[2]!.trim();
    env[m[1]!] = /^"(.*)"$/.exec(v)?.[1] ?? v;
  }
  return env;
}

function directive(unit: string, key: string): string {
  const m = new RegExp(`^${key}=(.+)$`, 'm').exec(unit);
  if (!m) throw new Error(`no ${key}= in the unit`);
  return m[1]!.trim();
}

function runShell(script: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-euo', 'pipefail', '-c', script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, out }));
  });
}

let redis: RedisServer;
let root: string;
let upstream: http.Server;
let upstreamPort = 0;
const services: Service[] = [];
/** What the upstream verified, per request. */
const verified: { sub: unknown; roles: unknown; aud: unknown; name: unknown }[] = [];
let jwksUrl = '';

beforeAll(async () => {
  assertBuilt();
  redis = await startRedisServer();
  root = mkdtempSync(path.join(tmpdir(), 'sessiongate-deploy-'));
  // the page's upstream: verifies every X-Session with the gateway's public keys (EdDSA)
  let jwks: ReturnType<typeof createRemoteJWKSet> | null = null;
  upstream = http.createServer((req, res) => {
    jwks ??= createRemoteJWKSet(new URL(jwksUrl));
    jwtVerify(String(req.headers['x-session']), jwks, { issuer: 'sessiongate', audience: 'app', algorithms: ['EdDSA'] }).then(
      ({ payload }) => {
        verified.push({ sub: payload.sub, roles: payload.roles, aud: payload.aud, name: payload.name });
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ hello: payload.sub, cookie: req.headers.cookie ?? null }));
      },
      (err: Error) => {
        res.statusCode = 401;
        res.end(err.message);
      },
    );
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamPort = (upstream.address() as AddressInfo).port;
}, 30_000);

afterAll(async () => {
  for (const s of services) await s.stop();
  await new Promise((r) => upstream?.close(r));
  await redis?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
}, 30_000);

describe('docs/deployment.md, followed step by step', () => {
  it('installs keys, environment, routes and a user, runs both units, and serves a login and a verified request', async () => {
    const doc = readFileSync(DOC, 'utf8');
    const blocks = recipeBlocks(doc);
    expect(blocks.map((b) => b.file ?? b.lang)).toEqual([
      'sh',
      '/etc/sessiongate/sessiongate.env',
      '/etc/sessiongate/routes.yaml',
      'sh',
      'deploy/systemd/sessiongate-gateway.service',
      'deploy/systemd/sessiongate-auth.service',
    ]);

    // the host, under a temporary root: /etc/sessiongate, /var/lib/sessiongate, and
    // `sessiongate` on PATH as the global install provides it
    const etc = path.join(root, 'etc/sessiongate');
    const state = path.join(root, 'var/lib/sessiongate');
    const bin = path.join(root, 'bin');
    for (const d of [etc, state, bin]) mkdirSync(d, { recursive: true });
    const wrapper = path.join(bin, 'sessiongate');
    writeFileSync(wrapper, `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`);
    chmodSync(wrapper, 0o755);

    // the page's ports, Redis and paths, moved to this test's own
    const ports: Record<string, number> = { 8080: await freePort(), 9091: await freePort(), 4000: await freePort(), 9092: await freePort(), 5000: upstreamPort };
    const place = (text: string) =>
      text
        .replaceAll('/etc/sessiongate', etc)
        .replaceAll('/var/lib/sessiongate', state)
        .replaceAll('/usr/local/bin/sessiongate', wrapper)
        .replaceAll('redis://127.0.0.1:6379', redis.url)
        .replace(/(?<=[:=])(8080|9091|4000|9092|5000)\b/g, (p) => String(ports[p]));
    const shellEnv = { PATH: `${bin}:${process.env.PATH}`, HOME: process.env.HOME, ADA_PASSWORD: 'ada-password-for-the-recipe' };

    const units: string[] = [];
    for (const block of blocks) {
      if (block.lang === 'sh') {
        const r = await runShell(place(block.text), shellEnv);
        expect(r.code, `${block.text}\n${r.out}`).toBe(0);
      } else if (block.file?.startsWith('/')) {
        writeFileSync(place(block.file), place(block.text));
      } else {
        // the units on the page are the units in the repository, byte for byte
        expect(block.text, block.file!).toBe(readFileSync(path.join(ROOT, block.file!), 'utf8'));
        units.push(place(block.text));
      }
    }
    // what the steps made: a signing key only the owner and group can read, a user
    expect(JSON.parse(readFileSync(path.join(etc, 'x-session-keys.json'), 'utf8')).keys[0]).toMatchObject({ alg: 'EdDSA', kty: 'OKP' });
    expect(readFileSync(path.join(state, 'users.yaml'), 'utf8')).toMatch(/ada:/);

    // both units, from ONE environment file: each process takes its own ports
    for (const unit of units) {
      const envFile = directive(unit, 'EnvironmentFile');
      const env = parseEnvFile(readFileSync(envFile, 'utf8'));
      expect(env.REDIS_URL).toBe(redis.url);
      const [exe, ...args] = directive(unit, 'ExecStart').split(/\s+/);
      expect(exe).toBe(wrapper);
      services.push(startService(args, env));
    }
    await Promise.all([services[0]!.waitFor(/sessiongate gateway ready/), services[1]!.waitFor(/sessiongate auth ready/)]);
    for (const p of [ports[9091], ports[9092]]) expect((await fetch(`http://127.0.0.1:${p}/readyz`)).status).toBe(200);

    // the TLS terminator's view: https, the public host, from a trusted proxy on loopback
    const gw = `http://127.0.0.1:${ports[8080]}`;
    jwksUrl = `${gw}/.well-known/jwks.json`;
    const viaProxy = { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.example.com' };

    const anonymous = await fetch(`${gw}/`, { headers: { ...viaProxy, accept: 'text/html' } });
    expect(anonymous.status).toBe(401);
    expect(await anonymous.text()).toContain('Example Corp');

    const login = await fetch(`${gw}/auth/login`, {
      method: 'POST',
      headers: { ...viaProxy, 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'ada', password: shellEnv.ADA_PASSWORD }),
    });
    expect(login.status).toBe(204);
    const setCookie = login.headers.get('set-cookie') ?? '';
    expect(setCookie).toMatch(/^__Host-sid=[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{4}; Path=\/; HttpOnly; SameSite=Lax; Secure/);
    const cookie = setCookie.split(';')[0]!;

    const page = await fetch(`${gw}/reports/7`, { headers: { ...viaProxy, cookie } });
    expect(page.status).toBe(200);
    expect(await page.json()).toEqual({ hello: 'ada', cookie: null });
    expect(verified.at(-1)).toEqual({ sub: 'ada', roles: ['user', 'admin'], aud: 'app', name: 'Ada' });

    // sign-out from the public origin passes the CSRF check (the proxy is trusted)
    const logout = await fetch(`${gw}/auth/logout`, { method: 'POST', headers: { ...viaProxy, cookie, origin: 'https://app.example.com' } });
    expect(logout.status, await logout.clone().text()).toBe(204);
    expect((await fetch(`${gw}/reports/7`, { headers: { ...viaProxy, cookie } })).status).toBe(401);
  }, 60_000);
});
