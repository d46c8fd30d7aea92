#!/usr/bin/env node
// Sizing figures for docs/sizing.md: `node bench/sizing.mjs` after `npm run build` (and,
// for the per-request figures, after `npm run bench`, whose bench/results/latest.md it reads).
//
// Starts a private redis-server, creates SIZING_SESSIONS sessions the way the auth service
// does (realistic records: a real browser user agent, an email claim, 1–3 roles, users with
// 1–3 sessions), and prints: bytes per live session (MEMORY USAGE of the record plus its
// share of the user index, and the growth of INFO used_memory), what one Redis core answers
// (redis-benchmark GET on this machine), then scales both, with the bench's Redis commands
// and CPU per request, to SIZING_LIVE live sessions and SIZING_RPS requests per second.

import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');
const N = Number(process.env.SIZING_SESSIONS ?? 50_000);
const LIVE = Number(process.env.SIZING_LIVE ?? 10_000_000);
const RPS = Number(process.env.SIZING_RPS ?? 100_000);
/**
 * Requests of one session that arrive together (a page view and its API calls, within the
 * cache TTL). With 10 million live sessions and 100 000 requests/s a session is asked for
 * about once every 100 s on average: the cache serves the rest of a burst, not the next one.
 */
const BURST = Number(process.env.SIZING_BURST ?? 10);
/** Gateway processes per core (the CLI's workers: one per core). */
const PROCESSES_PER_CORE = 1;
const SAMPLE = 2000;
/** Share of one Redis core a shard should run at, leaving room for bursts, replication and persistence. */
const REDIS_CPU_HEADROOM = 0.5;
/** Share of a gateway core to plan for (Node runs one request loop per process). */
const GATEWAY_CPU_HEADROOM = 0.7;
/** Memory a shard should hold at most (plus as much again for fork-based persistence). */
const SHARD_MEMORY_GB = 25;

const UAS = [
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1',
  'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36',
];
const ROLE_SETS = [['user'], ['user', 'billing'], ['user', 'support', 'admin']];

const { Redis } = await import('ioredis');
const session = await import(pathToFileURL(path.join(ROOT, 'session/dist/index.js')).href).catch(() => null);
const { mode } = await import('./invalidation.mjs');
if (!session) {
  process.stderr.write('sizing: session/dist is missing: run `npm run build` first\n');
  process.exit(2);
}

async function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const usedMemory = async (r) => Number(/^used_memory:(\d+)/m.exec(await r.info('memory'))[1]);

/** Redis commands and gateway CPU per request, from the last `npm run bench` (or null). */
function benchFigures() {
  const file = path.join(HERE, 'results', 'latest.md');
  if (!fs.existsSync(file)) return null;
  const text = fs.readFileSync(file, 'utf8');
  const row = (label) => {
    const line = text.split('\n').find((l) => l.startsWith(`| ${label} |`));
    if (!line) return null;
    const cells = line.split('|').map((c) => c.trim());
    return { rps: Number(cells[2].replace(/,/g, '')), cmds: Number(cells[7]), cpuUs: Number(cells[9]) };
  };
  const on = row('sessiongate, cache on, 1000 sessions');
  const off = row('sessiongate, cache off, 1000 sessions');
  const base = row('plain proxy (baseline)');
  const date = /^## sessiongate benchmark — (\S+)/m.exec(text)?.[1] ?? '?';
  return on && off && base ? { on, off, base, date } : null;
}

async function main() {
  const port = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-sizing-'));
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
    stdio: 'ignore',
  });
  const redis = new Redis({ port, maxRetriesPerRequest: 50, retryStrategy: (n) => (n > 50 ? null : 100) });
  redis.on('error', () => undefined);
  try {
    await redis.ping();
    const version = /redis_version:(\S+)/.exec(await redis.info('server'))[1];
    const store = new session.SessionStore(redis, new session.KeyLayout());
    // a session as the auth service writes one: n picks its roles and user agent
    const login = (sub, n, email) =>
      store.create({
        sub,
        roles: ROLE_SETS[n % ROLE_SETS.length],
        claims: { email },
        userAgent: UAS[n % UAS.length],
        idleTimeoutMs: 30 * 60_000,
        absoluteTimeoutMs: 12 * 3600_000,
      });
    const m0 = await usedMemory(redis);
    const sampled = [];
    let created = 0;
    let users = 0;
    while (created < N) {
      const sub = randomUUID();
      users++;
      const count = Math.min(N - created, 1 + (users % 3));
      const email = `firstname.lastname.${users}@example.com`;
      const made = [];
      for (let k = 0; k < count; k++) made.push(login(sub, users + k, email));
      const done = await Promise.all(made);
      created += count;
      if (sampled.length < SAMPLE) sampled.push({ sub, refs: done.map((d) => d.ref) });
    }
    const m1 = await usedMemory(redis);
    let recordBytes = 0;
    let indexBytes = 0;
    let sessions = 0;
    for (const u of sampled) {
      indexBytes += await redis.memory('USAGE', store.keys.userIndex(u.sub), 'SAMPLES', '0');
      for (const ref of u.refs) recordBytes += await redis.memory('USAGE', store.keys.session(ref), 'SAMPLES', '0');
      sessions += u.refs.length;
    }
    const perRecord = recordBytes / sessions;
    const perIndex = indexBytes / sessions;
    const perSession = perRecord + perIndex;
    const usedPerSession = (m1 - m0) / N;
    const example = await redis.get(store.keys.session(sampled[0].refs[0]));

    // users holding one session each: every session pays a whole index
    let singleBytes = 0;
    for (let u = 0; u < SAMPLE; u++) {
      const sub = randomUUID();
      const s = await login(sub, u, `firstname.lastname.${u}@example.com`);
      singleBytes += await redis.memory('USAGE', store.keys.userIndex(sub), 'SAMPLES', '0');
      singleBytes += await redis.memory('USAGE', store.keys.session(s.ref), 'SAMPLES', '0');
    }
    const perSingle = singleBytes / SAMPLE;

    // the sampled sessions again, each holding ~100 bytes of session data in one namespace
    // (a tenant, a cart id, a count, a flag), written as the session data endpoint writes it;
    // the figures above are of the sessions before, without data
    const d0 = await usedMemory(redis);
    let dataNsBytes = 0;
    for (const u of sampled) {
      for (const ref of u.refs) {
        const set = { tenant: 'acme-industries-eu', cartId: `c-${randomUUID()}`, items: 3, beta: true };
        const w = await store.writeData(u.sub, ref.sid, 'cart', { set, remove: [] }, { maxBytes: 1024, maxDataBytes: 4096 });
        if (w.outcome !== 'ok') throw new Error(`session data write: ${w.outcome}`);
        dataNsBytes += w.namespaceBytes;
      }
    }
    const d1 = await usedMemory(redis);
    let dataRecordBytes = 0;
    for (const u of sampled) {
      for (const ref of u.refs) dataRecordBytes += await redis.memory('USAGE', store.keys.session(ref), 'SAMPLES', '0');
    }
    const perDataRecord = dataRecordBytes / sessions;
    const perDataSession = perDataRecord + perIndex;
    const dataExample = await redis.get(store.keys.session(sampled[0].refs[0]));

    // what one Redis core answers on this machine: GET, 50 clients, no pipelining
    const bench = spawnSync('redis-benchmark', ['-p', String(port), '-t', 'get', '-n', '200000', '-c', '50', '-q', '-d', '150'], { encoding: 'utf8' });
    const getPerSec = Number(/GET: ([\d.]+) requests per second/.exec(bench.stdout ?? '')?.[1] ?? NaN);

    // what one key reported to one broadcast tracking connection costs Redis: the same writes
    // and re-reads in both modes, broadcast reporting many more keys (bench/invalidation.mjs)
    const b = await mode(port, true);
    const r = await mode(port, false);
    const fanoutUsPerKey = Math.max(0, ((b.redisCpuMs - r.redisCpuMs) * 1000) / Math.max(1, b.keysSeen - r.keysSeen));

    const f = benchFigures();
    const say = (l = '') => process.stdout.write(`${l}\n`);
    const gb = (x) => (x / 1e9).toFixed(1);
    const int = (n) => Math.round(n).toLocaleString('en-US');
    say(`## sessiongate sizing — ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')}`);
    say();
    say(`- Redis ${version}, ${os.cpus()[0]?.model ?? '?'} (${os.cpus().length} cores, load average ${os.loadavg()[0].toFixed(1)}); ${int(N)} sessions of ${int(users)} users (1–3 each), each with an email claim, 1–3 roles and a browser user agent`);
    say(`- stored record: \`${example}\` (${example.length} bytes)`);
    say(
      `- **Redis memory per live session: ${perSession.toFixed(0)} B** by MEMORY USAGE (record ${perRecord.toFixed(0)} B + its share of the user index ${perIndex.toFixed(0)} B, over ${int(sessions)} sessions); ` +
        `INFO used_memory grew ${usedPerSession.toFixed(0)} B per session (adds Redis' keyspace and expiry tables)`,
    );
    say(`- users holding one session each: **${perSingle.toFixed(0)} B per live session** by MEMORY USAGE (the record and a whole index, over ${int(SAMPLE)} users)`);
    say(
      `- **with ~100 B of session data: ${perDataSession.toFixed(0)} B per live session** by MEMORY USAGE (record ${perDataRecord.toFixed(0)} B + index ${perIndex.toFixed(0)} B), ` +
        `${(perDataSession - perSession).toFixed(0)} B more than the same sessions without data, for ${(dataNsBytes / sessions).toFixed(0)} B of data (one namespace: a tenant, a cart id, a count, a flag); ` +
        `INFO used_memory grew ${((d1 - d0) / sessions).toFixed(0)} B per session as it was written (over ${int(sessions)} sessions); the data part of a record: \`${dataExample.slice(dataExample.indexOf('\n') + 1)}\``,
    );
    say(`- one Redis core: ${Number.isFinite(getPerSec) ? int(getPerSec) : '?'} GET/s (redis-benchmark, 50 clients, no pipelining, on this machine)`);
    say(`- broadcast key tracking: ${fanoutUsPerKey.toFixed(2)} µs of Redis CPU per changed key per tracking connection (broadcast ${int(b.keysSeen)} keys in ${b.redisCpuMs.toFixed(0)} ms of Redis CPU against redirect ${int(r.keysSeen)} keys in ${r.redisCpuMs.toFixed(0)} ms, for the same writes)`);
    if (!f) {
      say('- per-request figures: run `npm run bench` first (bench/results/latest.md is missing or incomplete)');
      return;
    }
    say(`- per request, from \`npm run bench\` of ${f.date} (1000 sessions in turn): cache on ${f.on.cmds} Redis commands and ${f.on.cpuUs} µs of gateway CPU; cache off ${f.off.cmds} commands and ${f.off.cpuUs} µs; plain proxy ${f.base.cpuUs} µs`);
    say();

    // the model (docs/sizing.md): with the cache, each burst of one session's requests costs a
    // GET (miss), a PEXPIRE (its refresh is due: the last one was minutes ago) and a GET again
    // (the refresh is a change Redis reports, to this gateway too); without it, one command each
    const cmdsOnPerReq = Math.max(f.on.cmds, 3 / BURST);
    const cmdsOffPerReq = f.off.cmds;
    const writesOn = RPS / BURST;
    const cpuOnUs = f.on.cpuUs + cmdsOnPerReq * (f.off.cpuUs - f.on.cpuUs);
    const cores = (us) => (RPS * us) / 1e6 / GATEWAY_CPU_HEADROOM;
    const processesOn = Math.ceil(cores(cpuOnUs)) * PROCESSES_PER_CORE;
    const redisUsPerCmd = 1e6 / getPerSec;
    const redisCoresOff = (RPS * cmdsOffPerReq * redisUsPerCmd) / 1e6;
    const fanoutKeys = writesOn * processesOn;
    const redisCoresOn = (RPS * cmdsOnPerReq * redisUsPerCmd + fanoutKeys * fanoutUsPerKey) / 1e6;
    const memory = LIVE * usedPerSession;
    const shardsForMemory = Math.max(1, Math.ceil(memory / (SHARD_MEMORY_GB * 1e9)));
    const shards = (coresNeeded) => Math.max(shardsForMemory, Math.ceil(coresNeeded / REDIS_CPU_HEADROOM));
    say(`### ${int(LIVE)} live sessions, ${int(RPS)} requests/s, bursts of ${BURST} requests per session`);
    say();
    say('| | cache on | cache off |');
    say('|---|---:|---:|');
    say(`| Redis memory (used_memory) | ${gb(memory)} GB | ${gb(memory)} GB |`);
    say(`| Redis commands per request | ${cmdsOnPerReq.toFixed(3)} | ${cmdsOffPerReq.toFixed(3)} |`);
    say(`| Redis commands/s, all shards | ${int(RPS * cmdsOnPerReq)} | ${int(RPS * cmdsOffPerReq)} |`);
    say(`| keys reported by broadcast tracking/s (writes × ${processesOn} gateway processes) | ${int(fanoutKeys)} | – |`);
    say(`| Redis CPU, cores (this machine's figures) | ${redisCoresOn.toFixed(2)} | ${redisCoresOff.toFixed(2)} |`);
    say(`| Cluster shards (≤ ${REDIS_CPU_HEADROOM * 100}% of a core, ≤ ${SHARD_MEMORY_GB} GB each) | ${shards(redisCoresOn)} | ${shards(redisCoresOff)} |`);
    say(`| Redis commands/s per shard | ${int((RPS * cmdsOnPerReq) / shards(redisCoresOn))} | ${int((RPS * cmdsOffPerReq) / shards(redisCoresOff))} |`);
    say(`| gateway CPU per request | ${cpuOnUs.toFixed(0)} µs | ${f.off.cpuUs} µs |`);
    say(`| gateway cores (at ${GATEWAY_CPU_HEADROOM * 100}% busy) | ${cores(cpuOnUs).toFixed(1)} | ${cores(f.off.cpuUs).toFixed(1)} |`);
    say(`| plain proxy cores, for comparison | ${cores(f.base.cpuUs).toFixed(1)} | ${cores(f.base.cpuUs).toFixed(1)} |`);
    say();
  } finally {
    redis.disconnect();
    child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    process.stderr.write(`sizing failed: ${err?.stack ?? err}\n`);
    process.exit(2);
  },
);
