// The memory check: one cache-on gateway, many distinct live sessions, its RSS against a limit.
import { ABSOLUTE_TIMEOUT_MS, IDLE_TIMEOUT_MS, RSS_LIMIT_MB, RSS_PASSES, RSS_SESSIONS } from './config.mjs';
import { log, procStatusKb, say, sleep } from './proc.mjs';
import { drive } from './load.mjs';
import { KeyLayout, RECORD_VERSION, fmt, fmtInt, mintToken, serializeRecord, sessionRef } from './checks.mjs';

/** Writes the sessions, drives every one through `gwMem`, says the verdict; `ok` is false past the limit or on any error. */
export async function memoryCheck(gwMem, redis) {
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
  const ok = peak !== null && peak / 1024 < RSS_LIMIT_MB && res.other + res.errors === 0;
  say();
  say(
    `- ${ok ? 'PASS' : 'FAIL'} memory: sessiongate (cache on) RSS ${fmt(after / 1024, 0)} MB after ${(res.ok + res.other).toLocaleString('en-US')} requests over ${RSS_SESSIONS.toLocaleString('en-US')} distinct live sessions, peak ${fmt(peak / 1024, 0)} MB (limit ${RSS_LIMIT_MB} MB); ` +
      `${fmt(before / 1024, 0)} MB before, ${fmt(gwMem.startRssKb / 1024, 0)} MB at start; V8 heap ${fmt(heapUsed, 0)} MB used of ${fmt(heapTotal, 0)} MB; ` +
      `${fmtInt(cached)} sessions cached, ${fmtInt(active)} active; ${fmtInt(res.rps)} req/s` +
      (process.env.BENCH_GATEWAY_NODE_OPTIONS ? `; gateway NODE_OPTIONS=${process.env.BENCH_GATEWAY_NODE_OPTIONS}` : '') +
      (res.other || res.errors ? `; !! ${res.other} non-2xx ${JSON.stringify(res.statuses)}, ${res.errors} errors` : ''),
  );
  return { ok, rss: { before, after, peak, cached, active, res } };
}
