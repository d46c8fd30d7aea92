#!/usr/bin/env node
// How fast a change to a session key in Redis leaves a gateway's cache, and what the two
// modes of Redis client-side caching cost: `node bench/invalidation.mjs` after `npm run build`
// (npm run bench runs it too). Starts a private redis-server; prints Markdown.
//
// 1. Latency: a real SessionResolver (cache on, tracking in broadcast mode) holds sessions;
//    another connection changes them (DEL, SET, PEXPIRE) one at a time; the time from
//    sending the command to the resolver dropping the session, p50/p99.
// 2. Modes: one "gateway" connection reads (caches) a share of the session keys while other
//    gateways' refreshes (PEXPIRE) land on all of them; broadcast (BCAST PREFIX) against
//    redirect (tracking on the reading connection): invalidation messages received, Redis CPU,
//    latency, and Redis' tracking table.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const SAMPLES = Number(process.env.BENCH_INVALIDATION_SAMPLES ?? 600);
const KEYS = Number(process.env.BENCH_INVALIDATION_KEYS ?? 20_000);
const READ_SHARE = 0.1;
const WRITES = Number(process.env.BENCH_INVALIDATION_WRITES ?? 40_000);

const { Redis } = await import('ioredis');
// the shared contract, and the gateway's resolver (its cache) from the gateway's build
const session = {
  ...(await import(pathToFileURL(path.join(ROOT, 'session/dist/index.js')).href)),
  ...(await import(pathToFileURL(path.join(ROOT, 'gateway/dist/session/resolver.js')).href)),
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

function percentile(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

async function startRedis() {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-bench-inval-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
    stdio: 'ignore',
  });
  const client = new Redis({ port, maxRetriesPerRequest: 50, retryStrategy: (n) => (n > 50 ? null : 100) });
  client.on('error', () => undefined);
  await client.ping();
  return {
    port,
    client,
    async stop() {
      client.disconnect();
      child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function redisCpuMs(client) {
  const info = await client.info('cpu');
  const user = Number(/used_cpu_user:([\d.]+)/.exec(info)[1]);
  const sys = Number(/used_cpu_sys:([\d.]+)/.exec(info)[1]);
  return (user + sys) * 1000;
}

/** Part 1: the real resolver, changes by another connection, send → dropped. */
async function resolverLatency(port) {
  const client = session.createRedisClient({ connection: { mode: 'standalone', url: `redis://127.0.0.1:${port}` } });
  await session.waitUntilReady(client, 5000);
  const store = new session.SessionStore(client, new session.KeyLayout('sgbench:'));
  const resolver = new session.SessionResolver(store, { cache: { ttlMs: 600_000 } });
  await resolver.start();
  for (let i = 0; i < 500 && !resolver.cacheActive; i++) await sleep(10);
  if (!resolver.cacheActive) throw new Error('the resolver cache did not come on');
  const other = new Redis({ port });
  const waiting = new Map();
  const invalidate = resolver.invalidate.bind(resolver);
  resolver.invalidate = (sids) => {
    const list = [...sids];
    for (const sid of list) waiting.get(sid)?.();
    invalidate(list);
  };
  const samples = [];
  const kinds = ['del', 'set', 'pexpire'];
  for (let i = 0; i < SAMPLES; i++) {
    const s = await store.create({ sub: `u${i}`, roles: ['user'], idleTimeoutMs: 600_000, absoluteTimeoutMs: 3_600_000 });
    await sleep(1);
    for (let k = 0; k < 5 && (await resolver.resolve(s.token)).source !== 'cache'; k++) await sleep(1);
    const key = store.keys.session(s.ref);
    const kind = kinds[i % kinds.length];
    const dropped = new Promise((resolve) => waiting.set(s.ref.sid, resolve));
    const t0 = performance.now();
    if (kind === 'del') void other.del(key);
    else if (kind === 'set') void other.set(key, await client.get(key), 'KEEPTTL');
    else void other.pexpire(key, 600_000);
    await Promise.race([dropped, sleep(2000)]);
    samples.push(performance.now() - t0);
    waiting.delete(s.ref.sid);
  }
  await resolver.stop();
  client.disconnect();
  other.disconnect();
  return samples;
}

/** Part 2: one mode of client-side caching under other gateways' refreshes. */
export async function mode(port, bcast) {
  const admin = new Redis({ port });
  await admin.flushall();
  const prefix = 'sg:s:';
  const keys = Array.from({ length: KEYS }, (_, i) => `${prefix}{t${i % 997}}sid${i}`);
  for (let i = 0; i < keys.length; i += 1000) {
    const p = admin.pipeline();
    for (const k of keys.slice(i, i + 1000)) p.set(k, 'x'.repeat(200), 'PX', 600_000);
    await p.exec();
  }
  const reader = new Redis({ port });
  const sub = new Redis({ port, protocol: 2, autoResubscribe: false });
  const subId = await sub.client('ID');
  if (bcast) await sub.call('CLIENT', 'TRACKING', 'ON', 'REDIRECT', String(subId), 'BCAST', 'PREFIX', prefix);
  else await reader.call('CLIENT', 'TRACKING', 'ON', 'REDIRECT', String(subId));
  await sub.subscribe('__redis__:invalidate');
  let messages = 0;
  let keysSeen = 0;
  const waiting = new Map();
  const cached = new Set();
  const rereads = [];
  sub.on('messageBuffer', (_ch, payload) => {
    messages++;
    for (const k of Array.isArray(payload) ? payload.map(String) : []) {
      keysSeen++;
      waiting.get(k)?.();
      // a cache reads a dropped key again when next asked: that read tracks it again
      if (cached.has(k)) rereads.push(k);
    }
  });
  const read = keys.filter((_, i) => i % Math.round(1 / READ_SHARE) === 0);
  for (let i = 0; i < read.length; i += 500) await Promise.all(read.slice(i, i + 500).map((k) => reader.get(k)));
  for (const k of read) cached.add(k);
  await sleep(100);
  messages = 0;
  keysSeen = 0;
  const info0 = await admin.info('stats');
  const cpu0 = await redisCpuMs(admin);
  const writer = new Redis({ port });
  let rereadCmds = 0;
  for (let i = 0; i < WRITES; i += 200) {
    const p = writer.pipeline();
    for (let j = i; j < i + 200; j++) p.pexpire(keys[(j * 7919) % keys.length], 600_000);
    await p.exec();
    const again = rereads.splice(0);
    rereadCmds += again.length;
    if (again.length) await Promise.all(again.map((k) => reader.get(k)));
  }
  await sleep(100);
  const cpu1 = await redisCpuMs(admin);
  // latency of a change to a key this gateway has read
  const lat = [];
  for (let i = 0; i < 300; i++) {
    const k = read[i % read.length];
    await reader.get(k);
    const seen = new Promise((resolve) => waiting.set(k, resolve));
    const t0 = performance.now();
    void writer.pexpire(k, 600_000);
    await Promise.race([seen, sleep(2000)]);
    lat.push(performance.now() - t0);
    waiting.delete(k);
  }
  const tracking = await admin.info('stats');
  const trackedKeys = Number(/tracking_total_keys:(\d+)/.exec(tracking)?.[1] ?? NaN);
  const prefixes = Number(/tracking_total_prefixes:(\d+)/.exec(tracking)?.[1] ?? NaN);
  void info0;
  for (const c of [reader, sub, writer, admin]) c.disconnect();
  return {
    messages,
    keysSeen,
    rereadCmds,
    redisCpuMs: cpu1 - cpu0,
    p50: percentile(lat, 50),
    p99: percentile(lat, 99),
    trackedKeys,
    prefixes,
  };
}

export async function runInvalidationBench(print = (l) => process.stdout.write(`${l}\n`)) {
  const redis = await startRedis();
  try {
    const samples = await resolverLatency(redis.port);
    const p50 = percentile(samples, 50);
    const p99 = percentile(samples, 99);
    const max = Math.max(...samples);
    print(`### Invalidation (CLIENT TRACKING, broadcast mode)`);
    print('');
    print(
      `- invalidation latency, a change by another connection (DEL / SET / PEXPIRE, ${samples.length} changes) until the gateway's resolver drops the session: ` +
        `p50 ${p50.toFixed(2)} ms, **p99 ${p99.toFixed(2)} ms**, max ${max.toFixed(2)} ms`,
    );
    const b = await mode(redis.port, true);
    const r = await mode(redis.port, false);
    print(
      `- modes, ${KEYS.toLocaleString('en-US')} session keys of which this gateway has read ${Math.round(READ_SHARE * 100)}%, ${WRITES.toLocaleString('en-US')} refreshes (PEXPIRE) by other gateways over all of them:`,
    );
    print('');
    print('| mode | invalidation messages | keys named | re-reads | Redis CPU ms | p50 ms | p99 ms | Redis tracking table |');
    print('|---|---:|---:|---:|---:|---:|---:|---|');
    for (const [name, m] of [
      ['broadcast (BCAST PREFIX sg:s:)', b],
      ['redirect (tracking on the reading connection)', r],
    ]) {
      print(
        `| ${name} | ${m.messages.toLocaleString('en-US')} | ${m.keysSeen.toLocaleString('en-US')} | ${m.rereadCmds.toLocaleString('en-US')} | ${m.redisCpuMs.toFixed(0)} | ${m.p50.toFixed(2)} | ${m.p99.toFixed(2)} | ${Number.isFinite(m.trackedKeys) ? `${m.trackedKeys} keys` : ''}${Number.isFinite(m.prefixes) ? `, ${m.prefixes} prefixes` : ''} |`,
      );
    }
    print('');
    return { p50, p99, max, broadcast: b, redirect: r };
  } finally {
    await redis.stop();
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  runInvalidationBench().then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`invalidation bench failed: ${err?.stack ?? err}\n`);
      process.exit(2);
    },
  );
}
