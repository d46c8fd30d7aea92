#!/usr/bin/env node
// sessiongate benchmark: `npm run bench` (builds first), or `node bench/run.mjs` after a build.
//
// Starts a private redis-server, a plain node:http upstream, a plain fastify +
// @fastify/http-proxy baseline, two real `sessiongate gateway` processes (cache on, cache
// off) and, for reference, a hand-rolled fastify + ioredis session proxy (quick-gateway.mjs,
// with and without a 1 s cache), a 2-worker gateway and a tracing-on gateway, drives them in alternating rounds with one load generator, and prints req/s, p50/p99
// latency, the ratio to the baseline and Redis commands per request for each target, then
// checks the gateway's memory with 100 000 distinct live sessions. docs/performance.md explains the figures.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { nginxBinary, startForwardAuthNginx } from './forward-auth.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const require = createRequire(import.meta.url);

const HELP = `Usage: npm run bench [-- options]     (or: node bench/run.mjs [options] after npm run build)

Options:
  --quick        2 rounds × 2 s, 1 s warm-up, no memory check (a smoke run, not a result)
  --rss          only the memory check (100 000 live sessions through the cache-on gateway)
  --no-rss       skip the memory check
  --profile      run the servers under test with --cpu-prof (profiles in bench/results/profiles/)
  -h, --help     this help

Environment:
  BENCH_DURATION      seconds measured per target per round      (5; --quick: 2)
  BENCH_ROUNDS        rounds; targets alternate within each        (3; --quick: 2)
  BENCH_WARMUP        seconds of warm-up per target before round 1 (5; --quick: 1); every
                      measured interval is also preceded by 1 s of unmeasured load
  BENCH_CONNECTIONS   concurrent connections                       (50)
  BENCH_SESSIONS      size of the session pool                     (1000)
  BENCH_RSS_SESSIONS  distinct sessions of the memory check        (100000)
  BENCH_RSS_PASSES    passes over them                             (2)
  BENCH_LOADGEN       autocannon | wrk                             (wrk when on PATH)
  BENCH_TARGETS       comma list of target ids to run              (all: baseline,on-pool,on-bearer,on-single,off-pool,off-single,
                      on-pool-w2,on-pool-otel,none,quick,quick-lru,fa-plain,fa-sessiongate,
                      fa-reference)
                      on-pool-w2: GATEWAY_WORKERS=2, not pinned; on-pool-otel: tracing on,
                      exported to a local OTLP sink (on-pool is the same gateway, tracing off)
                      fa-*: forward auth, nginx in front of the upstream (needs nginx with
                      auth_request): plain proxy_pass, auth_request → sessiongate (cache on),
                      auth_request → the hand-rolled bench/reference-authz.mjs
  BENCH_GATEWAY_BIN   the sessiongate CLI to run                   (gateway/bin/sessiongate.js)
  BENCH_GATEWAY_NODE_OPTIONS  NODE_OPTIONS of the gateway processes only (e.g. --max-old-space-size=96)
  BENCH_COMPARE_BIN   a second sessiongate CLI, measured in the same rounds as "B: …" targets
                      (A/B a change: copy gateway/, change it, point this at its bin/)
`;

// ---------------------------------------------------------------------------------------
// settings

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    rss: { type: 'boolean', default: false },
    'no-rss': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (flags.help) {
  process.stdout.write(HELP);
  process.exit(0);
}

function envNumber(name, fallback, { min = 0, integer = false } = {}) {
  const raw = process.env[name]?.trim();
  if (!raw) return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
    process.stderr.write(`bench: ${name}="${raw}" is not a ${integer ? 'whole ' : ''}number ≥ ${min}\n`);
    process.exit(2);
  }
  return n;
}

const QUICK = flags.quick;
const DURATION_S = envNumber('BENCH_DURATION', QUICK ? 2 : 5, { min: 1 });
const ROUNDS = envNumber('BENCH_ROUNDS', QUICK ? 2 : 3, { min: 1, integer: true });
const WARMUP_S = envNumber('BENCH_WARMUP', QUICK ? 1 : 5, { min: 0 });
const SETTLE_S = 1;
const QUIESCE_MS = 200;
const CONNECTIONS = envNumber('BENCH_CONNECTIONS', 50, { min: 1, integer: true });
const POOL_SIZE = envNumber('BENCH_SESSIONS', 1000, { min: 1, integer: true });
const RSS_SESSIONS = envNumber('BENCH_RSS_SESSIONS', 100_000, { min: 1, integer: true });
const RSS_PASSES = envNumber('BENCH_RSS_PASSES', 2, { min: 1, integer: true });
const RUN_THROUGHPUT = !flags.rss;
const RUN_RSS = flags.rss || (!flags['no-rss'] && !QUICK);

const ROUTE_PREFIX = '/api/orders';
const REQUEST_PATH = `${ROUTE_PREFIX}/42`;
const PUBLIC_PREFIX = '/api/public';
const IDLE_TIMEOUT_MS = 30 * 60_000;
const ABSOLUTE_TIMEOUT_MS = 12 * 60 * 60_000;
const REFRESH_FRACTION = 0.1; // the gateway's default SESSION_REFRESH_FRACTION
const REFRESH_INTERVAL_MS = IDLE_TIMEOUT_MS * REFRESH_FRACTION;
const LOG_LEVEL = 'warn';
/** Key prefix of the references' copy of the sessions. */
const REFERENCE_KEY_PREFIX = 'ref:';
const RSS_LIMIT_MB = 200;

// the project's performance targets, as ratios to the plain proxy measured in the same run
// (cache off is also held to the hand-rolled reference without a cache, measured in the same rounds)
const TARGETS = { cacheOnRatio: 0.95, cacheOffRatio: 0.8, cacheOnP99: 1.2, cacheOnCmds: 0.02, cacheOffCmds: 1.0, forwardAuthVsReference: 1.3, forwardAuthP99: 1.3 };
// published figures of other session setups (same machine class, same ratio to a plain proxy)
const REFERENCES = [
  ['express + express-session + connect-redis', 0.23],
  ['nginx auth_request', 0.61],
  ['fastify + ioredis GETEX + HMAC, no cache', 0.66],
  ['stateless HS256 JWT fastify proxy', 0.71],
  ['fastify + ioredis GETEX + HMAC, 1 s lru-cache', 0.75],
];

// ---------------------------------------------------------------------------------------
// small helpers

const log = (msg) => process.stderr.write(`${msg}\n`);
const out = [];
const say = (line = '') => {
  out.push(line);
  process.stdout.write(`${line}\n`);
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function which(cmd) {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : null;
}

function versionOf(pkg) {
  try {
    return JSON.parse(fs.readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')).version;
  } catch {
    return '?';
  }
}

async function freePort() {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const s = net.createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => {
        const p = s.address().port;
        s.close(() => resolve(p));
      });
    });
    // never anything that could be someone's real Redis
    if (port !== 6379) return port;
  }
}

function median(xs) {
  const s = [...xs].filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function percentile(sorted, p) {
  if (!sorted.length) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

/** CPU seconds a process has used (user + system), from /proc; null when unreadable. */
function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields 14 and 15 of stat(5), counted after the ")" that ends the command name
    return (Number(f[11]) + Number(f[12])) / CLK_TCK;
  } catch {
    return null;
  }
}

/** CPU seconds of a process and its children (a gateway's workers), or null. */
function treeCpuSeconds(pid) {
  const own = cpuSeconds(pid);
  if (own === null) return null;
  let kids = [];
  try {
    kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    // no children list: the process alone
  }
  return kids.reduce((sum, k) => sum + (cpuSeconds(k) ?? 0), own);
}

/** Busy and total jiffies of each CPU, from /proc/stat. */
function coreTimes() {
  const cores = {};
  try {
    for (const line of fs.readFileSync('/proc/stat', 'utf8').split('\n')) {
      const m = /^cpu(\d+)\s+(.*)$/.exec(line);
      if (!m) continue;
      const v = m[2].trim().split(/\s+/).map(Number);
      const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
      cores[m[1]] = { busy: total - v[3] - v[4], total };
    }
  } catch {
    // not Linux: no per-core figures
  }
  return cores;
}

function coreBusyPct(before, after, core) {
  const a = before[core];
  const b = after[core];
  if (!a || !b || b.total === a.total) return NaN;
  return ((b.busy - a.busy) / (b.total - a.total)) * 100;
}

function procStatusKb(pid, field) {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

const loadavg = () => os.loadavg().map((x) => x.toFixed(2)).join(' ');

// ---------------------------------------------------------------------------------------
// child processes: every one is tracked and ended on exit, Ctrl-C included

const children = new Set();
const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sessiongate-bench-'));
let keepWorkDir = false;

const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
const tasksetPath = which('taskset');
const PIN = Boolean(tasksetPath) && cores >= 2 && process.platform === 'linux';
const SERVER_CORE = 0;
const DRIVER_CORE = 1;

/** `core` null: not pinned (a multi-process gateway gets every core). */
function pinned(core, cmd, args) {
  return PIN && core !== null ? ['taskset', ['-c', String(core), cmd, ...args]] : [cmd, args];
}

/** Spawns a child, keeps its output in a log file, resolves when `ready(line)` is true. */
function startChild(name, core, cmd, args, { env = {}, ready, timeoutMs = 20_000 } = {}) {
  const [file, argv] = pinned(core, cmd, args);
  const logFile = path.join(workDir, `${name}.log`);
  const logStream = fs.createWriteStream(logFile);
  const child = spawn(file, argv, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.name = name;
  child.logFile = logFile;
  child.stderr.pipe(logStream);
  let lines = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`${name} did not start within ${timeoutMs} ms (log: ${logFile})`)), timeoutMs);
    let settled = false;
    const fail = (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      keepWorkDir = true;
      reject(err);
    };
    child.on('error', fail);
    child.on('exit', (code, signal) => {
      children.delete(child);
      if (!settled) fail(new Error(`${name} exited (${code ?? signal}) before it was ready (log: ${logFile})`));
      else if (!shuttingDown) log(`!! ${name} exited unexpectedly (${code ?? signal}); log: ${logFile}`);
    });
    child.stdout.on('data', (chunk) => {
      logStream.write(chunk);
      if (settled) return;
      lines += chunk.toString();
      let i;
      while ((i = lines.indexOf('\n')) >= 0) {
        const line = lines.slice(0, i);
        lines = lines.slice(i + 1);
        const value = ready?.(line);
        if (value !== undefined && value !== false) {
          settled = true;
          clearTimeout(timer);
          resolve({ child, value });
          return;
        }
      }
    });
    if (!ready) {
      settled = true;
      clearTimeout(timer);
      resolve({ child, value: null });
    }
  });
}

function jsonPort(line) {
  try {
    const v = JSON.parse(line);
    return typeof v.port === 'number' ? v.port : undefined;
  } catch {
    return undefined;
  }
}

let shuttingDown = false;
async function stopChildren() {
  shuttingDown = true;
  const alive = [...children].filter((c) => c.exitCode === null && c.signalCode === null);
  const exited = alive.map((c) => new Promise((r) => c.once('exit', r)));
  for (const c of alive) {
    try {
      process.kill(c.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  const grace = flags.profile ? 15_000 : 5_000;
  await Promise.race([Promise.all(exited), sleep(grace)]);
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

process.on('exit', () => {
  for (const c of children) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        process.kill(c.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  if (!keepWorkDir) fs.rmSync(workDir, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    log(`\n${sig}: stopping every child process`);
    void stopChildren().finally(() => process.exit(130));
  });
}

// ---------------------------------------------------------------------------------------
// load generation: autocannon in this process (pinned to the driver core), or wrk

const wrkPath = which('wrk');
const LOADGEN = (process.env.BENCH_LOADGEN?.trim() || (wrkPath ? 'wrk' : 'autocannon')).toLowerCase();
if (LOADGEN !== 'autocannon' && LOADGEN !== 'wrk') {
  log(`bench: BENCH_LOADGEN must be autocannon or wrk, not "${LOADGEN}"`);
  process.exit(2);
}
if (LOADGEN === 'wrk' && !wrkPath) {
  log('bench: BENCH_LOADGEN=wrk but wrk is not on PATH');
  process.exit(2);
}
const autocannon = require('autocannon');

function loadgenVersion() {
  if (LOADGEN === 'autocannon') return `autocannon ${versionOf('autocannon')} (programmatic API, in the bench process)`;
  const r = spawnSync(wrkPath, ['-v'], { encoding: 'utf8' });
  const v = /wrk\s+(\S+)/.exec(`${r.stdout}${r.stderr}`)?.[1] ?? '?';
  return `wrk ${v} (-t1, ${wrkPath})`;
}

/** Cookie header values, one per request, rotated through. */
function cookieFile(cookies) {
  const file = path.join(workDir, `cookies-${cookies.length}-${cookies[0].slice(-12)}.txt`);
  if (!fs.existsSync(file)) fs.writeFileSync(file, `${cookies.join('\n')}\n`);
  return file;
}

/** A growable list of latencies (ms), sorted at the end. */
class Samples {
  constructor() {
    this.a = new Float64Array(1 << 16);
    this.n = 0;
  }
  push(v) {
    if (this.n === this.a.length) {
      const b = new Float64Array(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = v;
  }
  sorted() {
    return this.a.subarray(0, this.n).sort();
  }
}

/**
 * One load run against `port` for `seconds` (or `amount` requests), every request carrying
 * the next cookie of `cookies`. Resolves to counts and latency percentiles (ms).
 */
async function drive(port, cookies, { path: reqPath = REQUEST_PATH, seconds, amount, engine = LOADGEN, header = 'cookie' } = {}) {
  if (engine === 'wrk') return driveWrk(port, cookies, reqPath, seconds ?? 10, header);
  const url = `http://127.0.0.1:${port}`;
  const samples = new Samples();
  let ok = 0;
  let other = 0;
  let errors = 0;
  const statuses = {};
  let requests;
  if (cookies.length > 1) {
    // one counter for all connections: each request takes the next session of the pool in
    // turn (as wrk-cookies.lua does), so every session recurs every cookies.length requests.
    // (A list per connection would walk all connections through the pool in lockstep.)
    let k = 0;
    const setupRequest = (req) => {
      req.headers[header] = cookies[k++ % cookies.length];
      return req;
    };
    // many entries, so autocannon's per-wrap context reset is rare
    requests = Array.from({ length: 1000 }, () => ({ method: 'GET', path: reqPath, setupRequest }));
  } else {
    requests = [{ method: 'GET', path: reqPath, headers: { [header]: cookies[0] } }];
  }
  const t0 = performance.now();
  const result = await new Promise((resolve, reject) => {
    const inst = autocannon(
      {
        url,
        connections: CONNECTIONS,
        pipelining: 1,
        requests,
        timeout: 10,
        ...(amount ? { amount } : { duration: seconds }),
      },
      (err, res) => (err ? reject(err) : resolve(res)),
    );
    inst.on('response', (_client, statusCode, _bytes, ms) => {
      if (statusCode >= 200 && statusCode < 300) {
        ok++;
        samples.push(ms);
      } else {
        other++;
        statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
      }
    });
    inst.on('reqError', () => {
      errors++;
    });
  });
  const elapsed = (performance.now() - t0) / 1000;
  const sorted = samples.sorted();
  return {
    ok,
    other,
    errors: errors + (result.timeouts ?? 0),
    statuses,
    elapsed,
    rps: ok / elapsed,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
  };
}

function wrkMs(text) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 'ms' ? v : m[2] === 's' ? v * 1000 : v * 60_000;
}

async function driveWrk(port, cookies, reqPath, seconds, header = 'cookie') {
  const args = [
    '-t1',
    `-c${CONNECTIONS}`,
    `-d${Math.max(1, Math.round(seconds))}s`,
    '--latency',
    '--timeout',
    '10s',
    '-s',
    path.join(HERE, 'wrk-cookies.lua'),
    `http://127.0.0.1:${port}${reqPath}`,
    '--',
    cookieFile(cookies),
    header === 'cookie' ? 'Cookie' : 'Authorization',
  ];
  const [file, argv] = pinned(DRIVER_CORE, wrkPath, args);
  const text = await new Promise((resolve, reject) => {
    const c = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(c);
    let s = '';
    c.stdout.on('data', (d) => (s += d));
    c.stderr.on('data', (d) => (s += d));
    c.on('error', reject);
    c.on('exit', (code) => {
      children.delete(c);
      if (code === 0) resolve(s);
      else reject(new Error(`wrk exited ${code}:\n${s}`));
    });
  });
  const total = Number(/(\d+) requests in ([\d.]+)(\w+)/.exec(text)?.[1] ?? NaN);
  const elapsed = wrkMs(`${/requests in ([\d.]+\w+)/.exec(text)?.[1]}`) / 1000;
  const other = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(text)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const errors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  const pct = (p) => wrkMs(new RegExp(`^\\s*${p}%\\s+(\\S+)`, 'm').exec(text)?.[1] ?? '');
  const ok = total - other;
  return { ok, other, errors, statuses: other ? { 'non-2xx': other } : {}, elapsed, rps: ok / elapsed, p50: pct(50), p99: pct(99) };
}

// ---------------------------------------------------------------------------------------
// Redis

const { Redis } = await import('ioredis');
const sessionModule = pathToFileURL(path.join(ROOT, 'session/dist/index.js')).href;
// BENCH_GATEWAY_BIN: another build of the CLI to measure (A/B comparisons of a change)
const cliEntry = path.resolve(process.env.BENCH_GATEWAY_BIN?.trim() || path.join(ROOT, 'gateway/bin/sessiongate.js'));
// BENCH_COMPARE_BIN: a second build, measured in the same rounds as "B: …" targets
const compareEntry = process.env.BENCH_COMPARE_BIN?.trim() ? path.resolve(process.env.BENCH_COMPARE_BIN.trim()) : null;
if (!fs.existsSync(path.join(ROOT, 'session/dist/index.js'))) {
  log('bench: session/dist is missing: run `npm run build` first (npm run bench does it for you)');
  process.exit(2);
}
const { ApiKeyStore, SessionStore, KeyLayout, mintToken, sessionRef, serializeRecord, RECORD_VERSION } = await import(sessionModule);

// Commands that are connection plumbing or the bench's own reads, not the gateway's work
const NOT_COUNTED = new Set(['info', 'ping', 'subscribe', 'unsubscribe', 'psubscribe', 'client', 'hello', 'select', 'quit', 'auth', 'command']);

/** Session lookups a gateway has made, from its own metrics. */
async function sessionLookups(metricsPort) {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(/^sessiongate_session_lookups_total\{[^}]*\} (\d+)/gm)) n += Number(m[1]);
  return n;
}

async function redisCommandCount(redis) {
  const text = await redis.info('commandstats');
  let n = 0;
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    const name = m[1].toLowerCase().split('|')[0];
    if (!NOT_COUNTED.has(name)) n += Number(m[2]);
  }
  return n;
}

// ---------------------------------------------------------------------------------------
// correctness: the gateway really does the whole job on the route being measured

function b64urlJson(s) {
  return JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
}

async function checkGateway(name, port, secret, session, guestCookie) {
  const base = `http://127.0.0.1:${port}${ROUTE_PREFIX}/_echo`;
  const problems = [];
  const r = await fetch(base, { headers: { cookie: `theme=dark; ${session.cookie}`, 'x-session': 'forged', 'x-session-extra': 'x' } });
  if (r.status !== 200) problems.push(`valid session: status ${r.status}`);
  else {
    const seen = (await r.json()).headers;
    if (String(seen.cookie ?? '').includes('sid=')) problems.push('session cookie reached the upstream');
    if (seen.cookie !== 'theme=dark') problems.push(`other cookies not kept (${seen.cookie})`);
    const jwt = String(seen['x-session'] ?? '');
    const [h, p, sig] = jwt.split('.');
    if (!sig) problems.push(`no signed X-Session (got ${JSON.stringify(jwt).slice(0, 40)})`);
    else {
      const header = b64urlJson(h);
      const claims = b64urlJson(p);
      const expected = createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url');
      if (header.alg !== 'HS256' || sig !== expected) problems.push('X-Session signature does not verify');
      if (claims.aud !== 'orders' || claims.sub !== session.sub || !claims.roles?.includes('user')) problems.push('X-Session claims wrong');
    }
  }
  const anon = await fetch(base);
  await anon.arrayBuffer();
  if (anon.status !== 401) problems.push(`no cookie: status ${anon.status}, expected 401`);
  const guest = await fetch(base, { headers: { cookie: guestCookie } });
  await guest.arrayBuffer();
  if (guest.status !== 403) problems.push(`role guest: status ${guest.status}, expected 403`);
  if (problems.length) throw new Error(`${name} does not do the job on the benchmark route:\n  ${problems.join('\n  ')}`);
}

// ---------------------------------------------------------------------------------------
// the run

const fmt = (v, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '–');
const fmtInt = (v) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '–');

// nginx asking sessiongate: a session passes with a verified X-Session and without its
// cookie, none is a 401, a role the session lacks a 403; the reference endpoint passes too
async function checkForwardAuth(fa, secret, session, guestCookie) {
  const echo = await fetch(`http://127.0.0.1:${fa.viaSg.port}${ROUTE_PREFIX}/_echo`, { headers: { cookie: `${session.cookie}; theme=dark`, 'x-session': 'forged' } });
  const seen = await echo.json();
  const xs = String(seen.headers?.['x-session'] ?? '');
  const [h, p, sig] = xs.split('.');
  const good = sig && createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url') === sig;
  const claims = good ? b64urlJson(p) : {};
  if (echo.status !== 200 || !good || claims.sub !== session.sub || claims.aud !== 'orders' || String(seen.headers.cookie ?? '').includes('sid=') || seen.headers.cookie !== 'theme=dark') {
    throw new Error(`forward auth via nginx: the upstream saw ${JSON.stringify(seen.headers)} (status ${echo.status})`);
  }
  const statuses = [];
  for (const [port, headers] of [[fa.viaSg.port, { accept: 'application/json' }], [fa.viaSg.port, { cookie: guestCookie }], [fa.viaRef.port, { cookie: session.cookie }], [fa.plain.port, {}]]) {
    const r = await fetch(`http://127.0.0.1:${port}${REQUEST_PATH}`, { headers });
    await r.arrayBuffer();
    statuses.push(r.status);
  }
  if (statuses.join() !== '401,403,200,200') throw new Error(`forward auth via nginx: none/guest/reference/plain answered ${statuses.join('/')}, expected 401/403/200/200`);
  log('forward auth: X-Session verifies (aud orders), session cookie never at the upstream, no cookie → 401, wrong role → 403');
}

async function main() {
  const started = new Date();
  if (PIN) execFileSync('taskset', ['-a', '-p', '-c', String(DRIVER_CORE), String(process.pid)], { stdio: 'ignore' });

  const redisVersion = /v=(\S+)/.exec(spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout ?? '')?.[1];
  if (!redisVersion) throw new Error('redis-server is not on PATH: install Redis (apt-get install redis-server, brew install redis)');
  const cpuModel = /^model name\s*:\s*(.*)$/m.exec(fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : '')?.[1] ?? os.cpus()[0]?.model ?? '?';
  const sgVersion = JSON.parse(fs.readFileSync(path.join(ROOT, 'gateway/package.json'), 'utf8')).version;
  const loadAtStart = loadavg();

  // --- Redis (private, never 6379) -------------------------------------------------------
  const redisPort = await freePort();
  const redisDir = path.join(workDir, 'redis');
  fs.mkdirSync(redisDir);
  await startChild(
    'redis',
    DRIVER_CORE,
    'redis-server',
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', redisDir, '--loglevel', 'warning'],
  ); // ready when it answers PING, below
  const redisUrl = `redis://127.0.0.1:${redisPort}`;
  // commands queue until the server listens; give up after ~5 s
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 50, retryStrategy: (n) => (n > 50 ? null : 100) });
  redis.on('error', () => undefined); // refused until the server listens: retried
  await redis.ping();
  log(`redis-server ${redisVersion} on ${redisUrl}`);

  // --- upstream, baseline ----------------------------------------------------------------
  const up = await startChild('upstream', DRIVER_CORE, process.execPath, [path.join(HERE, 'upstream.mjs')], { ready: jsonPort });
  const upstreamUrl = `http://127.0.0.1:${up.value}`;
  const profDir = path.join(HERE, 'results', 'profiles');
  const nodeFlags = flags.profile ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [];
  if (flags.profile) fs.mkdirSync(profDir, { recursive: true });
  const base = RUN_THROUGHPUT
    ? await startChild('baseline', SERVER_CORE, process.execPath, [...nodeFlags, path.join(HERE, 'baseline.mjs')], {
        env: { UPSTREAM: upstreamUrl, PREFIX: ROUTE_PREFIX, PORT: '0' },
        ready: jsonPort,
      })
    : null;

  // --- the hand-rolled reference, without and with a 1 s cache --------------------------
  const quick = async (name, cacheMs) =>
    startChild(name, SERVER_CORE, process.execPath, [...nodeFlags, path.join(HERE, 'quick-gateway.mjs')], {
      env: {
        UPSTREAM: upstreamUrl,
        PREFIX: ROUTE_PREFIX,
        PORT: '0',
        REDIS_URL: redisUrl,
        KEY_PREFIX: REFERENCE_KEY_PREFIX,
        CACHE_MS: String(cacheMs),
        IDLE_MS: String(IDLE_TIMEOUT_MS),
      },
      ready: jsonPort,
    });
  const quickNoCache = RUN_THROUGHPUT ? await quick('quick-gateway', 0) : null;
  const quickLru = RUN_THROUGHPUT ? await quick('quick-gateway-lru', 1000) : null;

  // --- sessiongate ×2 --------------------------------------------------------------------
  const keysJson = execFileSync(process.execPath, [cliEntry, 'keys', 'generate', '--alg', 'HS256', '--kid', 'bench'], { encoding: 'utf8' }).trim();
  const keysFile = path.join(workDir, 'x-session-keys.json');
  fs.writeFileSync(keysFile, keysJson, { mode: 0o600 });
  const secret = Buffer.from(JSON.parse(keysJson).keys[0].k, 'base64url');
  const routesFile = path.join(workDir, 'routes.yaml');
  const routesText = (credentials) =>
    `version: 1\nroutes:\n  - name: orders\n    prefix: ${ROUTE_PREFIX}\n    upstream: ${upstreamUrl}\n    roles: [user]\n${credentials}` +
    `  - name: public\n    prefix: ${PUBLIC_PREFIX}\n    upstream: ${upstreamUrl}\n    auth: none\n`;
  // the route takes API keys too; a build compared against (BENCH_COMPARE_BIN) may not know `credentials`
  fs.writeFileSync(routesFile, routesText('    credentials: [cookie, api_key]\n'));
  const plainRoutesFile = path.join(workDir, 'routes-cookie-only.yaml');
  fs.writeFileSync(plainRoutesFile, routesText(''));

  async function startGateway(name, cacheOn, cli = cliEntry, { env: extraEnv = {}, core = SERVER_CORE } = {}) {
    const port = await freePort();
    const metricsPort = await freePort();
    const { child } = await startChild(name, core, process.execPath, [...nodeFlags, cli, 'gateway'], {
      env: {
        REDIS_URL: redisUrl,
        HOST: '127.0.0.1',
        PORT: String(port),
        METRICS_HOST: '127.0.0.1',
        METRICS_PORT: String(metricsPort),
        SESSIONGATE_ROUTES: cli === cliEntry ? routesFile : plainRoutesFile,
        SESSIONGATE_WATCH_ROUTES: 'false',
        X_SESSION_KEYS: keysFile,
        SESSION_CACHE: cacheOn ? 'true' : 'false',
        LOG_LEVEL,
        COOKIE_SECURE: 'false',
        // nginx asks the forward-auth endpoint from here
        SESSIONGATE_FORWARD_AUTH_PROXIES: '127.0.0.1/32',
        ...(process.env.BENCH_GATEWAY_NODE_OPTIONS ? { NODE_OPTIONS: process.env.BENCH_GATEWAY_NODE_OPTIONS } : {}),
        ...extraEnv,
      },
    });
    // ready when /readyz says so and, with the cache, the invalidation channel is subscribed
    const deadline = Date.now() + 20_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`${name} exited (${child.exitCode}); log: ${child.logFile}`);
      try {
        const ready = await fetch(`http://127.0.0.1:${metricsPort}/readyz`);
        await ready.arrayBuffer();
        if (ready.status === 200) {
          if (!cacheOn) break;
          const m = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
          if (/^sessiongate_session_cache_active 1$/m.test(m)) break;
        }
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) {
        keepWorkDir = true;
        throw new Error(`${name} not ready after 20 s; log: ${child.logFile}`);
      }
      await sleep(100);
    }
    return { child, port, metricsPort, startRssKb: procStatusKb(child.pid, 'VmRSS') };
  }
  const gwOn = await startGateway('sessiongate-cache-on', true);
  const gwOff = RUN_THROUGHPUT ? await startGateway('sessiongate-cache-off', false) : null;
  const wanted = (id) => !process.env.BENCH_TARGETS || process.env.BENCH_TARGETS.split(',').map((x) => x.trim()).includes(id);
  // two worker processes, on every core (pinning them to one would measure nothing)
  const gwW2 = RUN_THROUGHPUT && wanted('on-pool-w2') ? await startGateway('sessiongate-2-workers', true, cliEntry, { env: { GATEWAY_WORKERS: '2' }, core: null }) : null;
  // tracing on, every request sampled, exported to a collector that drops what it gets
  const sink = RUN_THROUGHPUT && wanted('on-pool-otel') ? await startChild('otlp-sink', DRIVER_CORE, process.execPath, [path.join(HERE, 'otlp-sink.mjs')], { ready: jsonPort }) : null;
  const gwOtel = sink
    ? await startGateway('sessiongate-tracing', true, cliEntry, { env: { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sink.value}`, OTEL_SERVICE_NAME: 'sessiongate-bench' } })
    : null;
  const gwB = RUN_THROUGHPUT && compareEntry
    ? { on: await startGateway('B-cache-on', true, compareEntry), off: await startGateway('B-cache-off', false, compareEntry) }
    : null;

  // --- forward auth: nginx in front of the same upstream ---------------------------------
  // nginx (one worker) and the endpoints are servers under test: on the server core
  const faIds = ['fa-plain', 'fa-sessiongate', 'fa-reference'];
  const faWanted = RUN_THROUGHPUT && faIds.some((id) => !process.env.BENCH_TARGETS || process.env.BENCH_TARGETS.split(',').map((x) => x.trim()).includes(id));
  let fa = null;
  if (faWanted && !nginxBinary()) log('forward-auth targets skipped: nginx is not installed (apt-get install nginx-light)');
  else if (faWanted) {
    const ref = await startChild('reference-authz', SERVER_CORE, process.execPath, [path.join(HERE, 'reference-authz.mjs')], { env: { REDIS_URL: redisUrl }, ready: jsonPort });
    const spawnAs = (name) => (file, args) => {
      const [f, a] = pinned(SERVER_CORE, file, args);
      const c = spawn(f, a, { stdio: ['ignore', 'ignore', 'pipe'] });
      c.name = name;
      children.add(c);
      c.on('exit', () => children.delete(c));
      return c;
    };
    const upstreamAddr = `127.0.0.1:${up.value}`;
    const nginx = async (name, endpoint) => startForwardAuthNginx({ port: await freePort(), upstream: upstreamAddr, endpoint, workDir, name, spawnAs: spawnAs(name) });
    fa = {
      ref,
      plain: await nginx('nginx-plain', null),
      viaSg: await nginx('nginx-sessiongate', `127.0.0.1:${gwOn.port}`),
      viaRef: await nginx('nginx-reference', `127.0.0.1:${ref.value}`),
    };
    log(`forward auth: nginx plain on ${fa.plain.port}, auth_request → sessiongate on ${fa.viaSg.port}, → reference endpoint on ${fa.viaRef.port}`);
  }

  // --- sessions --------------------------------------------------------------------------
  // written the way the auth service writes them; their ages are spread over one refresh
  // interval so expiry refreshes (PEXPIRE) arrive at their steady rate, not in one burst
  const store = new SessionStore(redis, new KeyLayout());
  const newSession = async (sub, roles) => {
    const age = Math.floor(Math.random() * REFRESH_INTERVAL_MS);
    const s = await store.create(
      { sub, roles, claims: { name: `User ${sub}` }, idleTimeoutMs: IDLE_TIMEOUT_MS, absoluteTimeoutMs: ABSOLUTE_TIMEOUT_MS },
      Date.now() - age,
    );
    return { sub, cookie: `sid=${s.token}` };
  };
  const pool = [];
  for (let i = 0; i < POOL_SIZE; i += 100) {
    const batch = [];
    for (let j = i; j < Math.min(POOL_SIZE, i + 100); j++) batch.push(newSession(`user-${j}`, ['user']));
    pool.push(...(await Promise.all(batch)));
  }
  const guest = await newSession('guest-0', ['guest']);
  // the references read a copy of the same sessions under a prefix of their own: their
  // GETEX on every request would otherwise be announced to the cache-on gateway (Redis key
  // tracking) and cost it CPU on the core they are measured on
  {
    const sgKeys = new KeyLayout();
    const refKeys = new KeyLayout(REFERENCE_KEY_PREFIX);
    const p = redis.pipeline();
    for (const s of [...pool, guest]) {
      const ref = sessionRef(s.cookie.slice('sid='.length));
      p.copy(sgKeys.session(ref), refKeys.session(ref));
    }
    await p.exec();
  }
  const poolCookies = pool.map((s) => s.cookie);
  const single = [pool[0].cookie];
  // one API key per user of the pool, as \`sessiongate api-keys create\` stores them
  const apiKeys = new ApiKeyStore(store);
  const poolKeys = [];
  for (let i = 0; i < pool.length; i += 100) {
    const batch = pool.slice(i, i + 100).map((s) => apiKeys.create({ sub: s.sub, name: 'bench', scope: null, ownerRoles: ['user'], expiresAt: null }));
    poolKeys.push(...(await Promise.all(batch)).map((k) => `Bearer ${k.key}`));
  }
  {
    const r = await fetch(`http://127.0.0.1:${gwOn.port}${REQUEST_PATH}`, { headers: { authorization: poolKeys[0] } });
    await r.arrayBuffer();
    if (r.status !== 200) throw new Error(`sessiongate (cache on): an API key answered ${r.status}, expected 200`);
  }

  await checkGateway('sessiongate (cache on)', gwOn.port, secret, pool[1 % pool.length], guest.cookie);
  if (gwOff) await checkGateway('sessiongate (cache off)', gwOff.port, secret, pool[2 % pool.length], guest.cookie);
  if (gwW2) await checkGateway('sessiongate (2 workers)', gwW2.port, secret, pool[6 % pool.length], guest.cookie);
  if (gwOtel) await checkGateway('sessiongate (tracing on)', gwOtel.port, secret, pool[7 % pool.length], guest.cookie);
  if (gwB) {
    await checkGateway('B (cache on)', gwB.on.port, secret, pool[3 % pool.length], guest.cookie);
    await checkGateway('B (cache off)', gwB.off.port, secret, pool[4 % pool.length], guest.cookie);
  }
  for (const [name, q] of [['quick-gateway', quickNoCache], ['quick-gateway-lru', quickLru]]) {
    if (!q) continue;
    const url = `http://127.0.0.1:${q.value}${REQUEST_PATH}`;
    const statuses = [];
    for (const headers of [{ cookie: pool[5 % pool.length].cookie }, {}, { cookie: guest.cookie }]) {
      const r = await fetch(url, { headers });
      await r.arrayBuffer();
      statuses.push(r.status);
    }
    if (statuses.join() !== '200,401,403') throw new Error(`${name}: valid/none/guest cookie answered ${statuses.join('/')}, expected 200/401/403`);
  }
  log('correctness: session cookie stripped, other cookies kept, forged X-Session dropped, X-Session HS256 verifies (aud, sub, roles), no cookie → 401, wrong role → 403');
  if (fa) await checkForwardAuth(fa, secret, pool[8 % pool.length], guest.cookie);

  // --- header ----------------------------------------------------------------------------
  const placement = PIN
    ? `taskset: servers under test (baseline, sessiongate) on core ${SERVER_CORE}; load generator (this process), redis-server and the upstream on core ${DRIVER_CORE}`
    : tasksetPath
      ? `no CPU pinning: only ${cores} core(s) available to this process`
      : 'no CPU pinning: taskset is not installed (util-linux); every process shares every core';
  say(`## sessiongate benchmark — ${started.toISOString().replace(/\.\d+Z$/, 'Z')}`);
  say();
  say(`- machine: ${cpuModel}, ${os.cpus().length} cores online (${cores} usable by the bench), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Linux ${os.release()}`);
  say(`- software: Node ${process.version}, sessiongate ${sgVersion}, fastify ${versionOf('fastify')}, @fastify/http-proxy ${versionOf('@fastify/http-proxy')}, ioredis ${versionOf('ioredis')}, redis-server ${redisVersion}`);
  say(`- load generator: ${loadgenVersion()}, ${CONNECTIONS} connections, keep-alive, GET ${REQUEST_PATH} (route \`orders\`, \`roles: [user]\`)`);
  say(`- placement: ${placement}`);
  say(`- load average at start: ${loadAtStart} (anything else running on these cores disturbs the figures)`);
  say(
    `- sessiongate: real \`sessiongate gateway\` processes, LOG_LEVEL=${LOG_LEVEL} (a log line per request would dominate the cost), X-Session HS256, SESSION_CACHE_TTL 5s, SESSION_CACHE_MAX 100000, SESSION_REFRESH_FRACTION 0.1 (defaults)`,
  );
  say(
    `- sessions: "${POOL_SIZE} sessions": each request carries the next of ${POOL_SIZE} distinct valid cookies in turn (round robin across all connections, so each session recurs every ${POOL_SIZE} requests); "1 session" sends one cookie; the baseline gets the same ${POOL_SIZE} cookies (and ignores them); session ages are spread over one refresh interval (${REFRESH_INTERVAL_MS / 60_000} min) so expiry refreshes arrive at their steady rate`,
  );

  let failed = false;
  let rounds = null;
  if (RUN_THROUGHPUT) {
    const targets = [
      { id: 'baseline', label: 'plain proxy (baseline)', port: base.value, pid: base.child.pid, cookies: poolCookies },
      { id: 'on-pool', label: `sessiongate, cache on, ${POOL_SIZE} sessions`, port: gwOn.port, metricsPort: gwOn.metricsPort, pid: gwOn.child.pid, cookies: poolCookies, cache: true },
      { id: 'on-bearer', label: `sessiongate, cache on, ${POOL_SIZE} API keys (Bearer)`, port: gwOn.port, metricsPort: gwOn.metricsPort, pid: gwOn.child.pid, cookies: poolKeys, header: 'authorization', cache: true },
      { id: 'on-single', label: 'sessiongate, cache on, 1 session', port: gwOn.port, metricsPort: gwOn.metricsPort, pid: gwOn.child.pid, cookies: single, cache: true },
      { id: 'off-pool', label: `sessiongate, cache off, ${POOL_SIZE} sessions`, port: gwOff.port, metricsPort: gwOff.metricsPort, pid: gwOff.child.pid, cookies: poolCookies, cache: false },
      { id: 'off-single', label: 'sessiongate, cache off, 1 session', port: gwOff.port, metricsPort: gwOff.metricsPort, pid: gwOff.child.pid, cookies: single, cache: false },
      // not a target: the gateway's cost without any session work, for diagnosis
      ...(fa
        ? [
            { id: 'fa-plain', label: 'forward auth: nginx, plain proxy_pass (no auth)', port: fa.plain.port, pid: fa.plain.child.pid, cookies: poolCookies, info: true },
            { id: 'fa-sessiongate', label: `forward auth: nginx auth_request → sessiongate, cache on, ${POOL_SIZE} sessions`, port: fa.viaSg.port, metricsPort: gwOn.metricsPort, pid: gwOn.child.pid, cookies: poolCookies, info: true },
            { id: 'fa-reference', label: `forward auth: nginx auth_request → hand-rolled endpoint (Redis GET + HMAC), ${POOL_SIZE} sessions`, port: fa.viaRef.port, pid: fa.ref.child.pid, cookies: poolCookies, info: true },
          ]
        : []),
      ...(gwW2
        ? [{ id: 'on-pool-w2', label: `sessiongate, cache on, ${POOL_SIZE} sessions, 2 workers (not pinned)`, port: gwW2.port, metricsPort: gwW2.metricsPort, pid: gwW2.child.pid, cookies: poolCookies, info: true }]
        : []),
      ...(gwOtel
        ? [{ id: 'on-pool-otel', label: `sessiongate, cache on, ${POOL_SIZE} sessions, tracing on (OTLP)`, port: gwOtel.port, metricsPort: gwOtel.metricsPort, pid: gwOtel.child.pid, cookies: poolCookies, info: true }]
        : []),
      { id: 'none', label: 'sessiongate, `auth: none` route', port: gwOn.port, pid: gwOn.child.pid, cookies: poolCookies, path: `${PUBLIC_PREFIX}/42`, info: true },
      // a hand-rolled session proxy, for reference (quick-gateway.mjs)
      { id: 'quick', label: `reference: fastify + ioredis GETEX + HMAC, no cache, ${POOL_SIZE} sessions`, port: quickNoCache.value, pid: quickNoCache.child.pid, cookies: poolCookies, info: true },
      { id: 'quick-lru', label: `reference: the same with a 1 s lru-cache, ${POOL_SIZE} sessions`, port: quickLru.value, pid: quickLru.child.pid, cookies: poolCookies, info: true },
      ...(gwB
        ? [
            { id: 'b-on-pool', label: `B: cache on, ${POOL_SIZE} sessions`, port: gwB.on.port, metricsPort: gwB.on.metricsPort, pid: gwB.on.child.pid, cookies: poolCookies, cache: true },
            { id: 'b-on-single', label: 'B: cache on, 1 session', port: gwB.on.port, metricsPort: gwB.on.metricsPort, pid: gwB.on.child.pid, cookies: single, cache: true },
            { id: 'b-off-pool', label: `B: cache off, ${POOL_SIZE} sessions`, port: gwB.off.port, metricsPort: gwB.off.metricsPort, pid: gwB.off.child.pid, cookies: poolCookies, cache: false },
            { id: 'b-off-single', label: 'B: cache off, 1 session', port: gwB.off.port, metricsPort: gwB.off.metricsPort, pid: gwB.off.child.pid, cookies: single, cache: false },
            { id: 'b-none', label: 'B: `auth: none` route', port: gwB.on.port, pid: gwB.on.child.pid, cookies: poolCookies, path: `${PUBLIC_PREFIX}/42`, info: true },
          ]
        : []),
    ].filter((t) => !process.env.BENCH_TARGETS || process.env.BENCH_TARGETS.split(',').map((s) => s.trim()).includes(t.id));
    if (!targets.some((t) => t.id === 'baseline')) throw new Error('BENCH_TARGETS must include baseline: every ratio is to it');
    say(`- procedure: ${WARMUP_S} s warm-up per target, then ${ROUNDS} rounds; in each round every target gets ${SETTLE_S} s of unmeasured load then ${DURATION_S} s measured, in an order rotated every round; figures are medians over rounds, ratios are medians of per-round ratios to the baseline of the same round`);
    say();

    if (WARMUP_S > 0) {
      for (const t of targets) {
        log(`warm-up  ${t.label} (${WARMUP_S} s)`);
        const w = await drive(t.port, t.cookies, { path: t.path, header: t.header, seconds: WARMUP_S });
        if (w.other || w.errors) throw new Error(`${t.label}: ${w.other} non-2xx (${JSON.stringify(w.statuses)}), ${w.errors} errors during warm-up`);
      }
    }

    rounds = targets.map(() => []);
    for (let r = 0; r < ROUNDS; r++) {
      const order = targets.map((_, i) => (i + r) % targets.length);
      for (const i of order) {
        const t = targets[i];
        await drive(t.port, t.cookies, { path: t.path, header: t.header, seconds: SETTLE_S });
        // let requests still in flight finish, so the counters bracket exactly one interval
        await sleep(QUIESCE_MS);
        const lookups0 = t.metricsPort ? await sessionLookups(t.metricsPort) : 0;
        const cmds0 = await redisCommandCount(redis);
        const cpu0 = treeCpuSeconds(t.pid);
        const core0 = coreTimes();
        const res = await drive(t.port, t.cookies, { path: t.path, header: t.header, seconds: DURATION_S });
        const core1 = coreTimes();
        const cpu1 = treeCpuSeconds(t.pid);
        await sleep(QUIESCE_MS);
        const cmds1 = await redisCommandCount(redis);
        const lookups1 = t.metricsPort ? await sessionLookups(t.metricsPort) : 0;
        const serverCpu = cpu0 !== null && cpu1 !== null ? ((cpu1 - cpu0) / res.elapsed) * 100 : NaN;
        const serverCoreBusy = coreBusyPct(core0, core1, String(SERVER_CORE));
        // requests the gateway handled, by its own count: it also handled the few the load
        // generator abandoned in flight when its time was up
        const handled = Math.max(res.ok + res.other, lookups1 - lookups0);
        const m = {
          ...res,
          cmdsPerReq: (cmds1 - cmds0) / Math.max(1, handled),
          cpuPerReqUs: cpu0 !== null && cpu1 !== null ? ((cpu1 - cpu0) / Math.max(1, res.ok + res.other)) * 1e6 : NaN,
          serverCpu,
          foreign: PIN ? Math.max(0, serverCoreBusy - serverCpu) : NaN,
          driverBusy: PIN ? coreBusyPct(core0, core1, String(DRIVER_CORE)) : NaN,
          load1: os.loadavg()[0],
        };
        rounds[i].push(m);
        log(
          `round ${r + 1}/${ROUNDS}  ${t.label.padEnd(40)} ${fmtInt(m.rps).padStart(7)} req/s  p50 ${fmt(m.p50)} ms  p99 ${fmt(m.p99)} ms  ` +
            `redis ${fmt(m.cmdsPerReq, 4)}/req  server CPU ${fmt(m.serverCpu, 0)}% ${fmt(m.cpuPerReqUs, 0)} µs/req` +
            (PIN ? `  core ${SERVER_CORE} other ${fmt(m.foreign, 0)}%  core ${DRIVER_CORE} busy ${fmt(m.driverBusy, 0)}%` : '') +
            `  load ${fmt(m.load1)}` +
            (m.other || m.errors ? `  !! ${m.other} non-2xx ${JSON.stringify(m.statuses)}, ${m.errors} errors` : ''),
        );
      }
    }

    // --- summary -------------------------------------------------------------------------
    const bi = targets.findIndex((t) => t.id === 'baseline');
    const baseRounds = rounds[bi];
    const summary = targets.map((t, i) => {
      const rs = rounds[i];
      return {
        target: t,
        rps: median(rs.map((m) => m.rps)),
        p50: median(rs.map((m) => m.p50)),
        p99: median(rs.map((m) => m.p99)),
        ratio: median(rs.map((m, k) => m.rps / baseRounds[k].rps)),
        p99Ratio: median(rs.map((m, k) => m.p99 / baseRounds[k].p99)),
        cmds: median(rs.map((m) => m.cmdsPerReq)),
        serverCpu: median(rs.map((m) => m.serverCpu)),
        cpuPerReqUs: median(rs.map((m) => m.cpuPerReqUs)),
        cpuRatio: median(rs.map((m, k) => baseRounds[k].cpuPerReqUs / m.cpuPerReqUs)),
        bad: rs.reduce((a, m) => a + m.other + m.errors, 0),
      };
    });
    say('| target | req/s | p50 ms | p99 ms | ratio to baseline | p99 vs baseline | Redis cmds/req | server CPU | CPU µs/req |');
    say('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const s of summary) {
      say(
        `| ${s.target.label} | ${fmtInt(s.rps)} | ${fmt(s.p50)} | ${fmt(s.p99)} | ${fmt(s.ratio)} | ${fmt(s.p99Ratio)}× | ${fmt(s.cmds, 4)} | ${fmt(s.serverCpu, 0)}% | ${fmt(s.cpuPerReqUs, 0)} |`,
      );
    }
    say();
    say(
      '"server CPU": CPU time of the server under test per second of the interval (100% = core ' +
        `${SERVER_CORE} fully busy); "CPU µs/req": its CPU time per request, which other load on the machine disturbs far less than req/s. ` +
        'Redis cmds/req: every command of INFO commandstats except connection plumbing (info, ping, subscribe, client, hello, select), over the requests the gateway handled.',
    );
    const byId = (id) => summary.find((s) => s.target.id === id);
    const ratioOf = (a, b) => {
      const ia = targets.findIndex((t) => t.id === a);
      const ib = targets.findIndex((t) => t.id === b);
      return median(rounds[ia].map((m, k) => m.rps / rounds[ib][k].rps));
    };
    if (byId('on-pool-w2') && byId('on-pool')) {
      say();
      say(
        `**1 worker against 2 workers** (cache on, ${POOL_SIZE} sessions): ${fmtInt(byId('on-pool').rps)} against ${fmtInt(byId('on-pool-w2').rps)} req/s, ` +
          `2 workers ÷ 1 = ${fmt(ratioOf('on-pool-w2', 'on-pool'))}× (median of per-round ratios); CPU µs/req ${fmt(byId('on-pool').cpuPerReqUs, 0)} against ${fmt(byId('on-pool-w2').cpuPerReqUs, 0)} (primary and workers together).`,
      );
      say(
        `This machine has ${cores} cores and the load generator (${LOADGEN}), redis-server and the upstream run on them too; the single-process gateway is pinned to core ${SERVER_CORE}, ` +
          `the 2-worker one is not pinned and shares both cores with them. So 2 workers cannot show 2× here and may show less than 1×: ` +
          'the figure says what a second core buys when nothing else needs it, only on a machine with cores to spare for the workers.',
      );
    }
    if (byId('on-pool-otel') && byId('on-pool')) {
      say();
      say(
        `**Tracing** (cache on, ${POOL_SIZE} sessions, every request sampled, OTLP/HTTP to a local sink): on ${fmtInt(byId('on-pool-otel').rps)} req/s, off ${fmtInt(byId('on-pool').rps)} req/s, ` +
          `on ÷ off = ${fmt(ratioOf('on-pool-otel', 'on-pool'))}×; CPU µs/req on ${fmt(byId('on-pool-otel').cpuPerReqUs, 0)}, off ${fmt(byId('on-pool').cpuPerReqUs, 0)}, baseline ${fmt(byId('baseline').cpuPerReqUs, 0)}. ` +
          'Off (no OTEL_ exporter setting) loads no OpenTelemetry module: the "cache on" rows are the tracing-off figures.',
      );
    }
    const baseSummary = summary.find((s) => s.target.id === 'baseline');
    if (baseSummary.serverCpu < 90) {
      say();
      say(
        `**Caution:** the baseline kept core ${SERVER_CORE} only ${fmt(baseSummary.serverCpu, 0)}% busy, so the load generator side (core ${DRIVER_CORE}), not the proxy, limited it; ` +
          'req/s ratios then understate the gateway\'s cost. Compare "CPU µs/req" too.',
      );
    }
    say();
    say(`Per round, req/s (${ROUNDS} × ${DURATION_S} s):`);
    say();
    for (let i = 0; i < targets.length; i++) {
      say(`- ${targets[i].label}: ${rounds[i].map((m) => fmtInt(m.rps)).join(' / ')}`);
    }
    if (PIN) {
      const foreign = Math.max(...rounds.flat().map((m) => m.foreign).filter(Number.isFinite));
      const driver = Math.max(...rounds.flat().map((m) => m.driverBusy).filter(Number.isFinite));
      say(`- most CPU taken on core ${SERVER_CORE} by anything but the server under test in one interval: ${fmt(foreign, 0)}%; busiest core ${DRIVER_CORE} (generator, Redis, upstream): ${fmt(driver, 0)}%`);
    }
    say(`- load average at end: ${loadavg()}`);
    say();

    // --- verdicts ------------------------------------------------------------------------
    const verdict = (ok) => (ok ? 'PASS' : 'FAIL');
    for (const s of summary) {
      if (s.target.id === 'baseline' || s.target.info) continue;
      const checks = [];
      if (s.target.cache) {
        checks.push([s.ratio >= TARGETS.cacheOnRatio, `ratio ${fmt(s.ratio)} ≥ ${TARGETS.cacheOnRatio}`]);
        checks.push([s.p99Ratio <= TARGETS.cacheOnP99, `p99 ${fmt(s.p99Ratio)}× ≤ ${TARGETS.cacheOnP99}× baseline`]);
        checks.push([s.cmds <= TARGETS.cacheOnCmds, `Redis ${fmt(s.cmds, 4)} cmds/req ≤ ${TARGETS.cacheOnCmds}`]);
      } else {
        checks.push([s.ratio >= TARGETS.cacheOffRatio, `ratio ${fmt(s.ratio)} ≥ ${TARGETS.cacheOffRatio}`]);
        const ref = summary.find((x) => x.target.id === 'quick');
        if (ref && s.target.cookies === poolCookies) checks.push([s.ratio >= ref.ratio, `ratio ${fmt(s.ratio)} ≥ hand-rolled reference ${fmt(ref.ratio)}`]);
        checks.push([s.cmds <= TARGETS.cacheOffCmds, `Redis ${fmt(s.cmds, 4)} cmds/req ≤ ${TARGETS.cacheOffCmds}`]);
      }
      if (s.bad) checks.push([false, `${s.bad} non-2xx responses or errors`]);
      const ok = checks.every(([c]) => c);
      failed ||= !ok;
      say(`- ${verdict(ok)} ${s.target.label}: ${checks.map(([c, text]) => `${c ? '✓' : '✗'} ${text}`).join(', ')}`);
    }
    const faS = summary.find((x) => x.target.id === 'fa-sessiongate');
    const faR = summary.find((x) => x.target.id === 'fa-reference');
    const faP = summary.find((x) => x.target.id === 'fa-plain');
    if (faS && faR && faP) {
      // same-round ratios, as for the gateway's own targets
      const si = targets.indexOf(faS.target);
      const ri = targets.indexOf(faR.target);
      const pi = targets.indexOf(faP.target);
      const vsRef = median(rounds[si].map((m, k) => m.rps / rounds[ri][k].rps));
      const p99VsPlain = median(rounds[si].map((m, k) => m.p99 / rounds[pi][k].p99));
      const okRef = vsRef >= TARGETS.forwardAuthVsReference;
      const okP99 = p99VsPlain <= TARGETS.forwardAuthP99;
      say(
        `- ${verdict(okRef && okP99)} forward auth (goals, not counted in the exit status): nginx → sessiongate ${fmtInt(faS.rps)} req/s, p99 ${fmt(faS.p99)} ms; ` +
          `${okRef ? '✓' : '✗'} ${fmt(vsRef)}× the hand-rolled endpoint's req/s (${fmtInt(faR.rps)}) ≥ ${TARGETS.forwardAuthVsReference}; ` +
          `${okP99 ? '✓' : '✗'} p99 ${fmt(p99VsPlain)}× plain nginx's (${fmt(faP.p99)} ms) ≤ ${TARGETS.forwardAuthP99}×; plain nginx ${fmtInt(faP.rps)} req/s`,
      );
    }
    const best = REFERENCES[REFERENCES.length - 1];
    say(`- reference figures measured elsewhere on this machine class (ratio to a plain proxy): ${REFERENCES.map(([n, r]) => `${n} ${r.toFixed(2)}`).join('; ')}; best is ${best[1].toFixed(2)}`);
  } else {
    say();
  }

  // --- invalidation latency and the tracking modes ------------------------------------------
  if (RUN_THROUGHPUT) {
    log('invalidation: latency of a change in Redis until the cache drops it, and the two tracking modes');
    const { runInvalidationBench } = await import('./invalidation.mjs');
    say();
    await runInvalidationBench(say);
  }

  // --- memory with 100 000 live sessions ---------------------------------------------------
  let rss = null;
  if (RUN_RSS) {
    // a gateway of its own: what the throughput rounds left in the others is not counted
    const gwMem = RUN_THROUGHPUT ? await startGateway('sessiongate-memory', true) : gwOn;
    log(`memory check: writing ${RSS_SESSIONS.toLocaleString('en-US')} sessions to Redis`);
    const keys = new KeyLayout();
    const now = Date.now();
    const cookies = new Array(RSS_SESSIONS);
    const BATCH = 5000;
    for (let i = 0; i < RSS_SESSIONS; i += BATCH) {
      const p = redis.pipeline();
      for (let j = i; j < Math.min(RSS_SESSIONS, i + BATCH); j++) {
        const sub = `rss-user-${j}`;
        const token = mintToken(sub);
        const ref = sessionRef(token);
        const record = {
          v: RECORD_VERSION,
          sid: ref.sid,
          sub,
          roles: ['user'],
          createdAt: now,
          absoluteExpiresAt: now + ABSOLUTE_TIMEOUT_MS,
          idleTimeoutMs: IDLE_TIMEOUT_MS,
          claims: { name: `User ${j}` },
        };
        p.set(keys.session(ref), serializeRecord(record), 'PX', IDLE_TIMEOUT_MS);
        cookies[j] = `sid=${token}`;
      }
      await p.exec();
    }
    const pid = gwMem.child.pid;
    const before = procStatusKb(pid, 'VmRSS');
    log(`memory check: ${RSS_PASSES} pass(es) of requests over all ${RSS_SESSIONS.toLocaleString('en-US')} sessions through a fresh cache-on gateway`);
    // autocannon whatever the generator of the rounds: one shared counter walks every session
    const res = await drive(gwMem.port, cookies, { amount: RSS_SESSIONS * RSS_PASSES, engine: 'autocannon' });
    await sleep(500);
    const after = procStatusKb(pid, 'VmRSS');
    const peak = procStatusKb(pid, 'VmHWM');
    const metrics = await (await fetch(`http://127.0.0.1:${gwMem.metricsPort}/metrics`)).text();
    const gauge = (name) => Number(new RegExp(`^${name} (\\d+(?:\\.\\d+)?(?:e\\+\\d+)?)`, 'm').exec(metrics)?.[1] ?? NaN);
    const cached = gauge('sessiongate_session_cache_entries');
    const active = gauge('sessiongate_active_sessions');
    const heapUsed = gauge('nodejs_heap_size_used_bytes') / 2 ** 20;
    const heapTotal = gauge('nodejs_heap_size_total_bytes') / 2 ** 20;
    rss = { before, after, peak, cached, active, res };
    const ok = peak !== null && peak / 1024 < RSS_LIMIT_MB && res.other + res.errors === 0;
    failed ||= !ok;
    say();
    say(
      `- ${ok ? 'PASS' : 'FAIL'} memory: sessiongate (cache on) RSS ${fmt(after / 1024, 0)} MB after ${(res.ok + res.other).toLocaleString('en-US')} requests over ${RSS_SESSIONS.toLocaleString('en-US')} distinct live sessions, peak ${fmt(peak / 1024, 0)} MB (limit ${RSS_LIMIT_MB} MB); ` +
        `${fmt(before / 1024, 0)} MB before, ${fmt(gwMem.startRssKb / 1024, 0)} MB at start; V8 heap ${fmt(heapUsed, 0)} MB used of ${fmt(heapTotal, 0)} MB; ` +
        `${fmtInt(cached)} sessions cached, ${fmtInt(active)} active; ${fmtInt(res.rps)} req/s` +
        (process.env.BENCH_GATEWAY_NODE_OPTIONS ? `; gateway NODE_OPTIONS=${process.env.BENCH_GATEWAY_NODE_OPTIONS}` : '') +
        (res.other || res.errors ? `; !! ${res.other} non-2xx ${JSON.stringify(res.statuses)}, ${res.errors} errors` : ''),
    );
  }

  // --- results file ----------------------------------------------------------------------
  const resultsDir = path.join(HERE, 'results');
  fs.mkdirSync(resultsDir, { recursive: true });
  fs.writeFileSync(path.join(resultsDir, 'latest.md'), `${out.join('\n')}\n`);
  log(`\nwritten to ${path.relative(process.cwd(), path.join(resultsDir, 'latest.md'))}`);

  await redis.quit();
  await stopChildren();
  if (flags.profile) log(`CPU profiles in ${path.relative(process.cwd(), profDir)} (open in Chrome DevTools or speedscope)`);
  return failed ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  async (err) => {
    keepWorkDir = true;
    log(`bench failed: ${err?.stack ?? err}`);
    log(`logs kept in ${workDir}`);
    await stopChildren();
    process.exit(2);
  },
);
