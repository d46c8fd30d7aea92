#!/usr/bin/env node
// Forward-auth benchmark pieces: nginx in front of the benchmark's upstream, either asking an
// authorization endpoint on every request (the shipped deploy/forward-auth/nginx.conf) or
// proxying plainly. run.mjs can import startForwardAuthNginx() for its targets; run on its
// own (`node bench/forward-auth.mjs`, after `npm run build`) it measures the plain nginx
// proxy and nginx + the hand-rolled reference endpoint (reference-authz.mjs) and prints
// req/s and p99 for each.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { freePort } from './lib/proc.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const SHIPPED_NGINX = path.join(ROOT, 'deploy/forward-auth/nginx.conf');

/** The nginx binary (nginx-light has auth_request), or null. */
export function nginxBinary() {
  for (const c of [process.env.NGINX_BIN, '/usr/sbin/nginx', ...(process.env.PATH ?? '').split(':').map((d) => path.join(d, 'nginx'))]) {
    if (c && fs.existsSync(c)) return c;
  }
  return null;
}

// the shipped site's addresses, replaced by the benchmark's (each must occur exactly once)
function shippedSite({ listen, endpoint, upstream }) {
  let text = fs.readFileSync(SHIPPED_NGINX, 'utf8');
  for (const [from, to] of [
    ['listen 80;', `listen ${listen};`],
    ['server 127.0.0.1:8080;', `server ${endpoint};`],
    ['server 127.0.0.1:9000;', `server ${upstream};`],
  ]) {
    if (text.split(from).length !== 2) throw new Error(`${SHIPPED_NGINX}: expected "${from}" exactly once`);
    text = text.replace(from, to);
  }
  return text;
}

function plainSite({ listen, upstream }) {
  return `upstream app {\n    server ${upstream};\n    keepalive 64;\n}\nserver {\n    listen ${listen};\n    location / {\n` +
    '        proxy_pass http://app;\n        proxy_http_version 1.1;\n        proxy_set_header Connection "";\n        proxy_set_header Host $host;\n    }\n}\n';
}

/**
 * Starts nginx (one worker, foreground) on `port`: with `endpoint` (host:port of an
 * authorization endpoint) the shipped forward-auth site, without it a plain proxy to
 * `upstream` (host:port). `spawnAs(file, args)` lets the caller pin or track the process.
 * Resolves to { child, port } once it listens.
 */
export async function startForwardAuthNginx({ port, upstream, endpoint = null, workDir, name = 'nginx', spawnAs = (f, a) => spawn(f, a, { stdio: ['ignore', 'ignore', 'pipe'] }) }) {
  const bin = nginxBinary();
  if (!bin) throw new Error('nginx is not installed (apt-get install nginx-light)');
  const dir = path.join(workDir, name);
  fs.mkdirSync(path.join(dir, 'tmp'), { recursive: true });
  const listen = `127.0.0.1:${port}`;
  const site = path.join(dir, 'site.conf');
  fs.writeFileSync(site, endpoint ? shippedSite({ listen, endpoint, upstream }) : plainSite({ listen, upstream }));
  const asRoot = process.getuid?.() === 0;
  const main = path.join(dir, 'nginx.conf');
  fs.writeFileSync(
    main,
    [
      'daemon off;',
      'worker_processes 1;',
      ...(asRoot ? ['user root;'] : []),
      `pid ${path.join(dir, 'nginx.pid')};`,
      'error_log stderr warn;',
      'events { worker_connections 4096; }',
      'http {',
      '    access_log off;',
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `    ${t}_temp_path ${path.join(dir, 'tmp', t)};`),
      `    include ${site};`,
      '}',
      '',
    ].join('\n'),
  );
  const child = spawnAs(bin, ['-p', `${dir}/`, '-c', main, '-e', 'stderr']);
  let err = '';
  child.stderr?.on('data', (d) => (err += d));
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`${name} exited (${child.exitCode}): ${err}`);
    const up = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
      s.on('error', () => resolve(false));
    });
    if (up) return { child, port };
    if (i > 200) throw new Error(`${name} did not listen on ${port}: ${err}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

// ---------------------------------------------------------------------------------------
// standalone run


function envNumber(name, fallback) {
  const raw = process.env[name]?.trim();
  const n = raw ? Number(raw) : fallback;
  if (!Number.isFinite(n) || n < 1) {
    process.stderr.write(`forward-auth bench: ${name}="${raw}" is not a number ≥ 1\n`);
    process.exit(2);
  }
  return n;
}

async function main() {
  const DURATION_S = envNumber('BENCH_DURATION', 5);
  const ROUNDS = envNumber('BENCH_ROUNDS', 3);
  const CONNECTIONS = envNumber('BENCH_CONNECTIONS', 50);
  const POOL_SIZE = envNumber('BENCH_SESSIONS', 1000);
  const REQUEST_PATH = '/api/orders/42';
  const wrk = spawnSync('sh', ['-c', 'command -v wrk'], { encoding: 'utf8' }).stdout.trim();
  if (!wrk) throw new Error('wrk is not on PATH');
  if (!nginxBinary()) throw new Error('nginx is not installed (apt-get install nginx-light)');
  const sessionModule = path.join(ROOT, 'session/dist/index.js');
  if (!fs.existsSync(sessionModule)) throw new Error('session/dist is missing: run `npm run build` first');
  const { SessionStore, KeyLayout } = await import(pathToFileURL(sessionModule).href);
  const { Redis } = await import('ioredis');

  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sessiongate-fwd-bench-'));
  const children = [];
  const pin = spawnSync('sh', ['-c', 'command -v taskset'], { encoding: 'utf8' }).status === 0 && os.cpus().length >= 2;
  const spawnOn = (core) => (file, args, opts = { stdio: ['ignore', 'pipe', 'pipe'] }) => {
    const c = pin ? spawn('taskset', ['-c', String(core), file, ...args], opts) : spawn(file, args, opts);
    children.push(c);
    return c;
  };
  const jsonPort = (child) =>
    new Promise((resolve, reject) => {
      let buf = '';
      child.stdout.on('data', (d) => {
        buf += d;
        const m = /\{"port":(\d+)\}/.exec(buf);
        if (m) resolve(Number(m[1]));
      });
      child.once('exit', (code) => reject(new Error(`exited ${code} before listening`)));
    });
  const stopAll = () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  };
  process.on('exit', () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    fs.rmSync(workDir, { recursive: true, force: true });
  });

  try {
    // servers under test on core 0; Redis, the upstream, the endpoint and wrk on core 1
    const redisPort = await freePort();
    spawnOn(1)('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', workDir], { stdio: 'ignore' });
    const redisUrl = `redis://127.0.0.1:${redisPort}`;
    const redis = new Redis(redisUrl, { maxRetriesPerRequest: 50, retryStrategy: (n) => (n > 50 ? null : 100) });
    redis.on('error', () => undefined);
    await redis.ping();
    const upstreamPort = await jsonPort(spawnOn(1)(process.execPath, [path.join(HERE, 'upstream.mjs')]));
    const endpointPort = await jsonPort(spawnOn(1)(process.execPath, [path.join(HERE, 'reference-authz.mjs')], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, REDIS_URL: redisUrl } }));
    const upstream = `127.0.0.1:${upstreamPort}`;
    const plain = await startForwardAuthNginx({ port: await freePort(), upstream, workDir, name: 'nginx-plain', spawnAs: spawnOn(0) });
    const authz = await startForwardAuthNginx({ port: await freePort(), upstream, endpoint: `127.0.0.1:${endpointPort}`, workDir, name: 'nginx-authz', spawnAs: spawnOn(0) });

    const store = new SessionStore(redis, new KeyLayout());
    const cookies = [];
    for (let i = 0; i < POOL_SIZE; i++) {
      const s = await store.create({ sub: `user-${i}`, roles: ['user'], claims: {}, idleTimeoutMs: 30 * 60_000, absoluteTimeoutMs: 12 * 3600_000 });
      cookies.push(`sid=${s.token}; theme=dark`);
    }
    const cookieFile = path.join(workDir, 'cookies.txt');
    fs.writeFileSync(cookieFile, `${cookies.join('\n')}\n`);

    // correctness: a valid session passes with X-Session and without the session cookie, none is a 401
    const echo = await (await fetch(`http://127.0.0.1:${authz.port}/api/orders/_echo`, { headers: { cookie: cookies[0] } })).json();
    if (!echo.headers['x-session'] || String(echo.headers.cookie ?? '').includes('sid=')) throw new Error(`nginx auth_request: the upstream saw ${JSON.stringify(echo.headers)}`);
    const anon = await fetch(`http://127.0.0.1:${authz.port}${REQUEST_PATH}`, { headers: { accept: 'application/json' } });
    if (anon.status !== 401) throw new Error(`nginx auth_request without a cookie answered ${anon.status}`);

    const ms = (t) => {
      const m = /^([\d.]+)(us|ms|s)$/.exec(t ?? '');
      return m ? Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1) : NaN;
    };
    const drive = (port, seconds) =>
      new Promise((resolve, reject) => {
        const args = ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--latency', '-s', path.join(HERE, 'wrk-cookies.lua'), `http://127.0.0.1:${port}${REQUEST_PATH}`, '--', cookieFile];
        const c = spawnOn(1)(wrk, args);
        let out = '';
        c.stdout.on('data', (d) => (out += d));
        c.on('exit', (code) => {
          if (code !== 0) return reject(new Error(`wrk exited ${code}: ${out}`));
          const total = Number(/(\d+) requests in/.exec(out)?.[1]);
          const elapsed = ms(/requests in ([\d.]+\w+)/.exec(out)?.[1]) / 1000;
          const bad = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
          resolve({ rps: (total - bad) / elapsed, p99: ms(/^\s*99%\s+(\S+)/m.exec(out)?.[1]), bad });
        });
      });
    const targets = [
      { label: 'nginx, plain proxy_pass', port: plain.port },
      { label: 'nginx auth_request → reference endpoint (node:http + ioredis GET + HMAC, no cache)', port: authz.port },
    ];
    for (const t of targets) await drive(t.port, 1);
    const results = targets.map(() => []);
    for (let r = 0; r < ROUNDS; r++) {
      for (let k = 0; k < targets.length; k++) {
        const i = (k + r) % targets.length;
        const m = await drive(targets[i].port, DURATION_S);
        results[i].push(m);
        process.stderr.write(`round ${r + 1}/${ROUNDS}  ${targets[i].label}: ${Math.round(m.rps)} req/s, p99 ${m.p99.toFixed(2)} ms${m.bad ? `, ${m.bad} non-2xx` : ''}\n`);
      }
    }
    const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
    const base = median(results[0].map((m) => m.rps));
    process.stdout.write(`\n| target | req/s | p99 ms | ratio to plain nginx |\n|---|---:|---:|---:|\n`);
    targets.forEach((t, i) => {
      const rps = median(results[i].map((m) => m.rps));
      process.stdout.write(`| ${t.label} | ${Math.round(rps).toLocaleString('en-US')} | ${median(results[i].map((m) => m.p99)).toFixed(2)} | ${(rps / base).toFixed(2)} |\n`);
    });
    process.stdout.write(`\n${ROUNDS} rounds × ${DURATION_S} s, ${CONNECTIONS} connections, ${POOL_SIZE} sessions, wrk -t1; medians over rounds${pin ? '; servers pinned to core 0, the rest to core 1' : ''}\n`);
    await redis.quit();
  } finally {
    stopAll();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().then(
    () => setTimeout(() => process.exit(0), 200),
    (err) => {
      process.stderr.write(`forward-auth bench failed: ${err?.stack ?? err}\n`);
      process.exit(2);
    },
  );
}
