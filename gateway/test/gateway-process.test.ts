import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateKeySet } from '@sessiongate/session';
import { KeyLayout, SessionStore, createRedisClient, waitUntilReady, type RedisClient } from '@sessiongate/session';
import { publicAndSlowRoutes, replaceFile } from '../../test/support/gateway.js';
import { freePort } from '../../test/support/redis-server.js';
import { assertBuilt, runCli, startService, type Service } from '../../test/support/process.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';

// The gateway as operators run it: a real `sessiongate gateway` process, signals and files.

const here = path.dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'sessiongate-proc-'));
const keysJson = JSON.stringify(generateKeySet('HS256'));
const prefix = `sgtest:${randomUUID()}:`;
let up: Upstream;
let slow: Upstream;
let redis: RedisClient;

function routes(extra = ''): string {
  return publicAndSlowRoutes(
    up.url,
    slow.url,
    `  - name: orders
    prefix: /orders
    upstream: ${up.url}
    roles: [user]
${extra}`,
  );
}

async function start(routesFile: string, env: NodeJS.ProcessEnv = {}): Promise<{ svc: Service; port: number; metricsPort: number }> {
  const port = await freePort();
  const metricsPort = await freePort();
  const svc = startService(['gateway'], {
    REDIS_URL: inject('redisUrl'),
    SESSIONGATE_REDIS_PREFIX: prefix,
    SESSIONGATE_ROUTES: routesFile,
    X_SESSION_KEYS: keysJson,
    HOST: '127.0.0.1',
    PORT: String(port),
    METRICS_PORT: String(metricsPort),
    SHUTDOWN_TIMEOUT: '5s',
    ...env,
  });
  await svc.waitFor(/sessiongate gateway ready/);
  await svc.waitFor(/cache on/);
  return { svc, port, metricsPort };
}

beforeAll(async () => {
  assertBuilt();
  up = await startUpstream('up');
  slow = await startUpstream('slow');
  slow.respond((_req, res) => setTimeout(() => res.end('slow done'), 600));
  redis = createRedisClient({ connection: { mode: 'standalone', url: inject('redisUrl') } });
  await waitUntilReady(redis, 5000);
});

afterAll(async () => {
  await up?.close();
  await slow?.close();
  await redis?.quit();
});

describe('startup', () => {
  it('refuses to start without X_SESSION_KEYS, naming the variable', async () => {
    const r = await runCli(['gateway'], { env: { SESSIONGATE_ROUTES: '/nonexistent.yaml' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/X_SESSION_KEYS/);
  });

  it('refuses to start on a bad duration, naming the variable', async () => {
    const r = await runCli(['gateway'], { env: { X_SESSION_KEYS: keysJson, SESSION_IDLE_TIMEOUT: 'soon' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/SESSION_IDLE_TIMEOUT/);
  });

  it('refuses to start on a bad heap growth or floor, naming the variable', async () => {
    const r = await runCli(['gateway'], { env: { X_SESSION_KEYS: keysJson, SESSIONGATE_HEAP_GROWTH: '-5' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/SESSIONGATE_HEAP_GROWTH: "-5" is not a whole number from 0 to 1000/);
    const floor = await runCli(['gateway'], { env: { X_SESSION_KEYS: keysJson, SESSIONGATE_HEAP_FLOOR: '64MB' } });
    expect(floor.code).toBe(1);
    expect(floor.stderr).toMatch(/SESSIONGATE_HEAP_FLOOR: "64MB" is not a whole number from 0 to 65536/);
  });

  it('refuses to start on an invalid routes file, with line:column', async () => {
    const file = path.join(dir, 'bad.yaml');
    writeFileSync(file, 'version: 1\nroutes:\n  - name: Bad_Name!\n    prefix: /x\n    upstream: http://127.0.0.1:1\n');
    const r = await runCli(['gateway'], { env: { X_SESSION_KEYS: keysJson, SESSIONGATE_ROUTES: file, PORT: '0', METRICS_PORT: '0' } });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/bad\.yaml:3:\d+/);
  });
});

describe('sessiongate check', () => {
  it('exits 0 on a valid file and 1 with line:column on an invalid one', async () => {
    const good = path.join(dir, 'good.yaml');
    writeFileSync(good, routes());
    const ok = await runCli(['check', good]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/valid, 3 routes/);
    const broken = path.join(dir, 'broken.yaml');
    writeFileSync(broken, 'version: 1\nroutes:\n  - name: orders\n    prefix: /api/orders\n    upstream: http://x.invalid\n    roles: [user\n');
    const bad = await runCli(['check', broken]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/broken\.yaml:\d+:\d+/);
  });

  it('documents every command with --help', async () => {
    for (const args of [['--help'], ['gateway', '--help'], ['check', '--help'], ['keys', '--help'], ['help', 'check']]) {
      const r = await runCli(args);
      expect(r.code, args.join(' ')).toBe(0);
      expect(r.stdout).toMatch(/Usage: sessiongate/);
    }
    const unknown = await runCli(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command/);
  });

  it('top-level help lists every users command, with --roles optional', async () => {
    const r = await runCli(['--help']);
    for (const sub of ['add', 'set-roles', 'disable', 'enable', 'set-password', 'list', 'remove']) {
      expect(r.stdout, sub).toMatch(new RegExp(`^  users ${sub} `, 'm'));
    }
    expect(r.stdout).toContain('users add NAME [--roles a,b]');
    expect(r.stdout).not.toMatch(/users add NAME --roles/);
  });

  it('gateway --help lists every variable the gateway reads, COOKIE_SECURE and LOG_LEVEL silent included', async () => {
    const help = (await runCli(['gateway', '--help'])).stdout;
    // the gateway's own settings and the shared session settings it reads
    const sources = ['../src/settings.ts', '../../session/src/settings.ts', '../../session/src/redis.ts'].map((f) => readFileSync(path.join(here, f), 'utf8'));
    const names = new Set<string>();
    for (const text of sources) for (const m of text.matchAll(/env(?:\.|, ')([A-Z][A-Z0-9_]{2,})/g)) names.add(m[1]!);
    expect(names.size).toBeGreaterThan(20);
    for (const n of [...names, 'COOKIE_SECURE', 'GATEWAY_PORT', 'GATEWAY_METRICS_PORT', 'SESSIONGATE_BRAND_NAME']) expect(help, n).toContain(n);
    expect(help).toMatch(/^  LOG_LEVEL .*fatal, error, warn, info, debug, trace, silent$/m);
  });

  it('check takes the file as --routes too, and says what to do with an unknown option', async () => {
    const good = path.join(dir, 'good-flag.yaml');
    writeFileSync(good, routes());
    const ok = await runCli(['check', '--routes', good]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/valid, 3 routes/);
    const bad = await runCli(['check', '--file', good]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^sessiongate check: unknown option --file; give the routes file as FILE or with --routes FILE/);
    // not Node's parser text (with its unbalanced quote)
    expect(bad.stderr).not.toMatch(/positional argument|'-- "/);
    const empty = await runCli(['check', '--routes']);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/--routes needs a file/);
  });
});

describe('a running gateway', () => {
  it('reloads routes on SIGHUP and on file change, and keeps them when the new file is invalid', async () => {
    const file = path.join(dir, `routes-${randomUUID()}.yaml`);
    writeFileSync(file, routes());
    const { svc, port, metricsPort } = await start(file);
    try {
      const get = (p: string) => fetch(`http://127.0.0.1:${port}${p}`);
      expect((await get('/extra/x')).status).toBe(404);

      // an invalid file: the routes in force stay, the failure is logged with its position and counted
      writeFileSync(file, `${routes()}  - name: BAD\n    prefix: /extra\n    upstream: ${up.url}\n`);
      svc.child.kill('SIGHUP');
      await svc.waitFor(/routes reload failed/);
      expect(svc.output()).toMatch(/routes-[^:]+\.yaml:\d+:\d+/);
      expect((await get('/public/x')).status).toBe(200);
      const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      expect(metrics).toMatch(/sessiongate_config_reloads_total\{result="failure"\} [1-9]/);

      // a valid file, replaced the way editors and config management do (write + rename)
      replaceFile(file, `${routes()}  - name: extra\n    prefix: /extra\n    upstream: ${up.url}\n    auth: none\n`);
      await svc.waitFor(/routes reloaded/);
      expect((await get('/extra/x')).status).toBe(200);

      // SIGHUP alone reloads too
      writeFileSync(file, routes());
      svc.child.kill('SIGHUP');
      const deadline = Date.now() + 5000;
      while ((await get('/extra/x')).status !== 404 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect((await get('/extra/x')).status).toBe(404);
    } finally {
      await svc.stop();
    }
  });

  it('drains in-flight requests on SIGTERM and exits 0', async () => {
    const file = path.join(dir, `routes-${randomUUID()}.yaml`);
    writeFileSync(file, routes());
    const { svc, port } = await start(file);
    const inflight = fetch(`http://127.0.0.1:${port}/slow/x`).then(async (r) => ({ status: r.status, body: await r.text() }));
    await new Promise((r) => setTimeout(r, 150));
    svc.child.kill('SIGTERM');
    const res = await inflight;
    expect(res).toEqual({ status: 200, body: 'slow done' });
    expect(await svc.exited()).toEqual({ code: 0, signal: null });
    expect(svc.output()).toMatch(/shutdown complete/);
    await expect(fetch(`http://127.0.0.1:${port}/public/x`)).rejects.toThrow();
  });

  it('writes a heap snapshot on the --heapsnapshot-signal signal and keeps serving', async () => {
    const file = path.join(dir, `routes-${randomUUID()}.yaml`);
    writeFileSync(file, routes());
    const snapshots = mkdtempSync(path.join(tmpdir(), 'sessiongate-snap-'));
    const { svc, port } = await start(file, { NODE_OPTIONS: `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=${snapshots}` });
    try {
      svc.child.kill('SIGUSR2');
      // the snapshot is written in the background: wait until it is whole
      const deadline = Date.now() + 15_000;
      let written: string | undefined;
      while (!written && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        const file = readdirSync(snapshots).find((f) => f.endsWith('.heapsnapshot'));
        if (file && statSync(path.join(snapshots, file)).size > 0 && svc.child.exitCode === null) {
          const res = await fetch(`http://127.0.0.1:${port}/public/x`);
          if (res.status === 200) written = file;
        }
      }
      expect(written, svc.output().slice(-2000)).toBeDefined();
      expect(svc.child.exitCode).toBeNull();
      expect(svc.output()).not.toMatch(/shutting down/);
    } finally {
      await svc.stop();
      rmSync(snapshots, { recursive: true, force: true });
    }
  });

  it('never writes the session token or an X-Session value to its log', async () => {
    const file = path.join(dir, `routes-${randomUUID()}.yaml`);
    writeFileSync(file, routes());
    const store = new SessionStore(redis, new KeyLayout(prefix));
    const { token } = await store.create({ sub: 'alice', roles: ['user'], idleTimeoutMs: 60_000, absoluteTimeoutMs: 120_000 });
    const { svc, port } = await start(file);
    try {
      const res = await fetch(`http://127.0.0.1:${port}/orders/1`, { headers: { cookie: `sid=${token}`, 'x-session': 'forged-identity-value' } });
      expect(res.status).toBe(200);
      const xs = up.last().headers['x-session'] as string;
      expect(xs).toMatch(/^ey/);
      await svc.waitFor(/"path":"\/orders\/1"/);
      const out = svc.output();
      expect(out).toMatch(/"sub":"alice"/);
      expect(out).not.toContain(token);
      expect(out).not.toContain(xs);
      expect(out).not.toContain('forged-identity-value');
    } finally {
      await svc.stop();
    }
  });
});
