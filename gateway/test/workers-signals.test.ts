import { randomUUID } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { generateKeySet } from '@sessiongate/session';
import { assertBuilt } from '../../test/support/process.js';
import { startUpstream, type Upstream } from '../../test/support/upstream.js';
import { freshGet, sample, startWorkerGateway, type WorkerGateway } from '../../test/support/workers.js';

// Signals and faults of `--workers 2`, on real processes: SIGHUP and a routes file change
// reload every worker once, a killed worker is replaced (and a crash loop ends the
// primary), SIGTERM drains every worker and exits 0.

const dir = mkdtempSync(path.join(tmpdir(), 'sg-workers-signals-'));
const keysJson = JSON.stringify(generateKeySet('HS256'));
let up: Upstream;
let slow: Upstream;

function routes(extra = ''): string {
  return `version: 1
routes:
  - name: public
    prefix: /public
    upstream: ${up.url}
    auth: none
  - name: slow
    prefix: /slow
    upstream: ${slow.url}
    auth: none
${extra}`;
}

/** Writes the routes file the way editors do: a new file renamed over the old one. */
function replaceRoutes(file: string, text: string): void {
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

function start(routesFile: string, env: Record<string, string> = {}): Promise<WorkerGateway> {
  return startWorkerGateway(2, {
    REDIS_URL: inject('redisUrl'),
    SESSIONGATE_REDIS_PREFIX: `sgtest:${randomUUID()}:`,
    X_SESSION_KEYS: keysJson,
    SESSIONGATE_ROUTES: routesFile,
    ...env,
  });
}

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const reloadedPids = (gw: WorkerGateway, since: number) =>
  gw
    .lines()
    .slice(since)
    .filter((l) => l.msg === 'routes reloaded')
    .map((l) => l.pid as number);

beforeAll(async () => {
  assertBuilt();
  up = await startUpstream('up');
  slow = await startUpstream('slow');
  slow.respond((_req, res) => setTimeout(() => res.end('slow done'), 800));
});

afterAll(async () => {
  await up?.close();
  await slow?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('a running pair of workers', () => {
  let gw: WorkerGateway;
  const file = path.join(dir, 'routes.yaml');

  beforeAll(async () => {
    writeFileSync(file, routes());
    gw = await start(file);
  }, 60_000);
  afterAll(async () => gw?.close());

  it('reloads routes in every worker on SIGHUP, counted once', async () => {
    replaceRoutes(file, routes(`  - name: extra\n    prefix: /extra\n    upstream: ${up.url}\n    auth: none\n`));
    await until('the file change reloaded both workers', () => reloadedPids(gw, 0).length >= 2);
    const since = gw.lines().length;
    const workers = new Set(gw.workerPids());
    expect(new Set(reloadedPids(gw, 0))).toEqual(workers);
    // one change, one reload per worker (the primary watches; the workers do not)
    await new Promise((r) => setTimeout(r, 500));
    expect(reloadedPids(gw, 0)).toHaveLength(2);
    for (let i = 0; i < 6; i++) expect((await freshGet(gw.port, '/extra/x')).status).toBe(200);

    process.kill(gw.pid, 'SIGHUP');
    await until('SIGHUP reloaded both workers', () => reloadedPids(gw, since).length >= 2);
    expect(new Set(reloadedPids(gw, since))).toEqual(workers);
    const m = await gw.metrics();
    // every worker reloaded twice: two reloads, not four
    expect(sample(m, 'sessiongate_config_reloads_total', 'result="success"')).toBe(2);
    expect(sample(m, 'sessiongate_config_last_reload_successful')).toBe(1);
  });

  it('replaces a killed worker and counts the restart', async () => {
    const [victim, survivor] = gw.workerPids().slice(-2) as [number, number];
    process.kill(victim, 'SIGKILL');
    await until('a replacement reported ready', () => gw.workerPids().length >= 3, 15_000);
    const replacement = gw.workerPids().at(-1)!;
    expect([victim, survivor]).not.toContain(replacement);
    expect(gw.lines().some((l) => l.msg === 'worker exited unexpectedly: starting a replacement' && l.signal === 'SIGKILL')).toBe(true);
    await until('the primary is ready again', async () => (await fetch(`http://127.0.0.1:${gw.metricsPort}/readyz`)).status === 200);
    const m = await gw.metrics();
    expect(sample(m, 'sessiongate_worker_restarts_total')).toBe(1);
    expect(sample(m, 'sessiongate_workers_ready')).toBe(2);
    const since = gw.lines().length;
    for (let i = 0; i < 10; i++) expect((await freshGet(gw.port, '/public/x')).status).toBe(200);
    await new Promise((r) => setTimeout(r, 200));
    const served = new Set(gw.lines().slice(since).filter((l) => l.msg === 'request').map((l) => l.pid));
    expect(served).toEqual(new Set([survivor, replacement]));
  });

  it('drains every worker on SIGTERM and exits 0', async () => {
    // one slow request in flight in each worker (connections alternate between them)
    const inflight = Array.from({ length: 4 }, () => freshGet(gw.port, '/slow/x'));
    await until('the slow upstream has all four', () => slow.received.length >= 4);
    process.kill(gw.pid, 'SIGTERM');
    const answers = await Promise.all(inflight);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    expect(answers.every((a) => a.body === 'slow done')).toBe(true);
    expect(await gw.svc.exited()).toEqual({ code: 0, signal: null });
    const lines = gw.lines();
    const drained = new Set(lines.filter((l) => l.msg === 'shutdown complete').map((l) => l.pid));
    expect(drained).toEqual(new Set([gw.pid, ...gw.workerPids().slice(-2)]));
  });
});

it('gives up on a crash loop with a clear log line and exit 1', async () => {
  const file = path.join(dir, 'loop.yaml');
  writeFileSync(file, routes());
  const gw = await start(file, { SESSIONGATE_WATCH_ROUTES: 'false', GATEWAY_WORKER_RESTART_LIMIT: '2' });
  try {
    // replacements cannot start: the routes file is now invalid
    writeFileSync(file, 'version: 1\nroutes:\n  - name: Bad!\n    prefix: /x\n    upstream: http://127.0.0.1:1\n');
    process.kill(gw.workerPids()[0]!, 'SIGKILL');
    const exit = await gw.svc.exited();
    expect(exit).toEqual({ code: 1, signal: null });
    const fatal = gw.lines().find((l) => l.level === 60);
    expect(fatal?.msg).toMatch(/^worker crash loop: 2 restarts within 60 s and a worker died again; giving up$/);
    expect(gw.svc.output()).toMatch(/bad\.yaml|loop\.yaml:3:\d+/);
    const restarts = gw.lines().filter((l) => l.msg === 'worker exited unexpectedly: starting a replacement');
    expect(restarts.map((l) => l.restartInMs)).toEqual([100, 200]);
  } finally {
    await gw.close();
  }
}, 30_000);
