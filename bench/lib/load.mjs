// Load generation: autocannon in this process (pinned to the driver core), or wrk.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { HERE, require, CONNECTIONS, REQUEST_PATH } from './config.mjs';
import { histOfMs, histOfWrk } from './latency.mjs';
import { log, which, versionOf, percentile, children, workDir, DRIVER_CORE, pinned } from './proc.mjs';

export const wrkPath = which('wrk');
export const LOADGEN = (process.env.BENCH_LOADGEN?.trim() || (wrkPath ? 'wrk' : 'autocannon')).toLowerCase();
if (LOADGEN !== 'autocannon' && LOADGEN !== 'wrk') {
  log(`bench: BENCH_LOADGEN must be autocannon or wrk, not "${LOADGEN}"`);
  process.exit(2);
}
if (LOADGEN === 'wrk' && !wrkPath) {
  log('bench: BENCH_LOADGEN=wrk but wrk is not on PATH');
  process.exit(2);
}
export const autocannon = require('autocannon');

export function loadgenVersion() {
  if (LOADGEN === 'autocannon') return `autocannon ${versionOf('autocannon')} (programmatic API, in the bench process)`;
  const r = spawnSync(wrkPath, ['-v'], { encoding: 'utf8' });
  const v = /wrk\s+(\S+)/.exec(`${r.stdout}${r.stderr}`)?.[1] ?? '?';
  return `wrk ${v} (-t1, ${wrkPath})`;
}

/** Cookie header values, one per request, rotated through. */
export function cookieFile(cookies) {
  const file = path.join(workDir, `cookies-${cookies.length}-${cookies[0].slice(-12)}.txt`);
  if (!fs.existsSync(file)) fs.writeFileSync(file, `${cookies.join('\n')}\n`);
  return file;
}

/** A growable list of latencies (ms), sorted at the end. */
export class Samples {
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
export async function drive(port, cookies, { path: reqPath = REQUEST_PATH, seconds, amount, engine = LOADGEN, header = 'cookie' } = {}) {
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
    hist: histOfMs(sorted),
  };
}

export function wrkMs(text) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 'ms' ? v : m[2] === 's' ? v * 1000 : v * 60_000;
}

export async function driveWrk(port, cookies, reqPath, seconds, header = 'cookie') {
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
  return { ok, other, errors, statuses: other ? { 'non-2xx': other } : {}, elapsed, rps: ok / elapsed, p50: pct(50), p99: pct(99), hist: histOfWrk(text) };
}

// ---------------------------------------------------------------------------------------
// Redis
