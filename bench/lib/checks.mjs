// The Redis side of the bench and the checks that the gateways under test behave before they are measured.
import { createHmac } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT, ROUTE_PREFIX, REQUEST_PATH } from './config.mjs';
import { log } from './proc.mjs';

export const { Redis } = await import('ioredis');
export const sessionModule = pathToFileURL(path.join(ROOT, 'session/dist/index.js')).href;
// BENCH_GATEWAY_BIN: another build of the CLI to measure (A/B comparisons of a change)
export const cliEntry = path.resolve(process.env.BENCH_GATEWAY_BIN?.trim() || path.join(ROOT, 'gateway/bin/sessiongate.js'));
// BENCH_COMPARE_BIN: a second build, measured in the same rounds as "B: …" targets
export const compareEntry = process.env.BENCH_COMPARE_BIN?.trim() ? path.resolve(process.env.BENCH_COMPARE_BIN.trim()) : null;
if (!fs.existsSync(path.join(ROOT, 'session/dist/index.js'))) {
  log('bench: session/dist is missing: run `npm run build` first (npm run bench does it for you)');
  process.exit(2);
}
export const { ApiKeyStore, SessionStore, KeyLayout, mintToken, sessionRef, serializeRecord, RECORD_VERSION, SESSION_DATA_CLAIM } = await import(sessionModule);

// Commands that are connection plumbing or the bench's own reads, not the gateway's work
export const NOT_COUNTED = new Set(['info', 'ping', 'subscribe', 'unsubscribe', 'psubscribe', 'client', 'hello', 'select', 'quit', 'auth', 'command']);

/** Session lookups a gateway has made, from its own metrics. */
export async function sessionLookups(metricsPort) {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  let n = 0;
  for (const m of text.matchAll(/^sessiongate_session_lookups_total\{[^}]*\} (\d+)/gm)) n += Number(m[1]);
  return n;
}

/** Calls of each counted command so far, by name (Redis counts the commands a script runs too). */
export async function redisCommandStats(redis) {
  const text = await redis.info('commandstats');
  const calls = {};
  for (const m of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    const name = m[1].toLowerCase().split('|')[0];
    if (!NOT_COUNTED.has(name)) calls[name] = (calls[name] ?? 0) + Number(m[2]);
  }
  return calls;
}

export async function redisCommandCount(redis) {
  return Object.values(await redisCommandStats(redis)).reduce((a, b) => a + b, 0);
}

/** Garbage collection time of a Node process so far, by kind, in ms, and its V8 heap in use, MB (prom-client's default metrics). */
export async function gcMs(metricsPort) {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const of = (kind) => Number(new RegExp(`^nodejs_gc_duration_seconds_sum\\{kind="${kind}"\\} ([\\d.e+-]+)`, 'm').exec(text)?.[1] ?? 0) * 1000;
  const heap = Number(/^nodejs_heap_size_used_bytes ([\d.e+-]+)/m.exec(text)?.[1] ?? NaN) / 2 ** 20;
  // the longest event-loop stall since the previous scrape (prom-client resets it on each one)
  const lagMaxMs = Number(/^nodejs_eventloop_lag_max_seconds ([\d.e+-]+)/m.exec(text)?.[1] ?? NaN) * 1000;
  return { minor: of('minor'), major: of('major') + of('incremental'), heapMb: heap, lagMaxMs };
}

/** A gateway's own counts: session lookups (all, and those Redis answered) and session data writes. */
export async function gatewayCounts(metricsPort) {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const sum = (re) => [...text.matchAll(re)].reduce((a, m) => a + Number(m[1]), 0);
  return {
    lookups: sum(/^sessiongate_session_lookups_total\{[^}]*\} (\d+)/gm),
    fromRedis: sum(/^sessiongate_session_lookups_total\{[^}]*source="redis"[^}]*\} (\d+)/gm),
    writes: sum(/^sessiongate_session_data_writes_total\{[^}]*outcome="written"[^}]*\} (\d+)/gm),
  };
}

// ---------------------------------------------------------------------------------------
// correctness: the gateway really does the whole job on the route being measured

export function b64urlJson(s) {
  return JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
}

export async function checkGateway(name, port, secret, session, guestCookie) {
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

export const fmt = (v, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '–');
export const fmtInt = (v) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '–');

// nginx asking sessiongate: a session passes with a verified X-Session and without its
// cookie, none is a 401, a role the session lacks a 403; the reference endpoint passes too
export async function checkForwardAuth(fa, secret, session, guestCookie) {
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
