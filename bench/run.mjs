#!/usr/bin/env node
// sessiongate benchmark: `npm run bench` (builds first), or `node bench/run.mjs` after a build.
//
// Starts a private redis-server, a plain node:http upstream, a plain fastify +
// @fastify/http-proxy baseline, real `sessiongate gateway` processes (cache on; cache on for
// the session data and forward-auth rows; cache off) and, for reference, a hand-rolled fastify + ioredis session proxy (quick-gateway.mjs,
// with and without a 1 s cache), a 2-worker gateway and a tracing-on gateway, drives them in alternating rounds with one load generator, and prints req/s, p50/p99
// latency, the ratio to the baseline and Redis commands per request for each target, then
// checks the gateway's memory with 100 000 distinct live sessions. docs/performance.md explains the figures.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { HERE, flags, TAIL_PAIRS, DURATION_S, ROUNDS, WARMUP_S, SETTLE_S, QUIESCE_MS, CONNECTIONS, POOL_SIZE, RUN_THROUGHPUT, RUN_RSS, REQUEST_PATH, PUBLIC_PREFIX, DATA_PATH, WRITE_PATH, REFRESH_INTERVAL_MS, LOG_LEVEL, TARGETS, REFERENCES } from './lib/config.mjs';
import { keepLogs, log, out, say, sleep, which, versionOf, median, treeCpuSeconds, coreTimes, coreBusyPct, loadavg, workDir, cores, tasksetPath, PIN, SERVER_CORE, DRIVER_CORE, pinned, stopChildren } from './lib/proc.mjs';
import { LOADGEN, loadgenVersion, drive } from './lib/load.mjs';
import { Redis, sessionLookups, redisCommandCount, redisCommandStats, gatewayCounts, gcMs, fmt, fmtInt } from './lib/checks.mjs';
import { memoryCheck } from './lib/rss.mjs';
import { runTailPhase, describeTailPhase } from './lib/tail.mjs';
import { startServers } from './lib/servers.mjs';

/** What a target's interval is compared with: the mean of the baseline intervals before and after it. */
function meanOf(a, b) {
  return { rps: (a.rps + b.rps) / 2, p99: (a.p99 + b.p99) / 2, cpuPerReqUs: (a.cpuPerReqUs + b.cpuPerReqUs) / 2 };
}

/** The port, metrics port and pid of a gateway, for a target it serves. */
function servedBy(gw) {
  return { port: gw.port, metricsPort: gw.metricsPort, pid: gw.child.pid };
}

/** A measured interval or slice as BENCH_KEEP_LOGS=1 writes it: its histogram as [µs, count] pairs. */
const keptInterval = ({ hist, base, ...m }) => ({ ...m, hist: hist ? [...hist] : null });

async function main() {
  const { started, redisVersion, cpuModel, sgVersion, loadAtStart, redisPort, redisDir, redisUrl, redis, up, upstreamUrl, profDir, nodeFlags, base, baseAA, quick, quickNoCache, quickLru, keysJson, keysFile, secret, routesFile, routesText, plainRoutesFile, startGateway, gwOn, gwOther, gwOff, wanted, gwW2, sink, gwOtel, gwB, faIds, faWanted, fa, store, newSession, pool, guest, poolCookies, single, apiKeys, poolKeys, writer, dataCookies, writeCookies, cartBytes } = await startServers();
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
    `- sessiongate: real \`sessiongate gateway\` processes, each serving only its own rows (the judged cache-on rows and \`auth: none\` one process; the session data and forward-auth rows another; cache off a third), as the baseline serves only its own, LOG_LEVEL=${LOG_LEVEL} (a log line per request would dominate the cost), X-Session HS256, SESSION_CACHE_TTL 5s, SESSION_CACHE_MAX 100000, SESSION_REFRESH_FRACTION 0.1 (defaults)`,
  );
  say(
    `- sessions: "${POOL_SIZE} sessions": each request carries the next of ${POOL_SIZE} distinct valid cookies in turn (round robin across all connections, so each session recurs every ${POOL_SIZE} requests); "1 session" sends one cookie; the baseline gets the same ${POOL_SIZE} cookies (and ignores them); session ages are spread over one refresh interval (${REFRESH_INTERVAL_MS / 60_000} min) so expiry refreshes arrive at their steady rate`,
  );

  if (writer) {
    say(
      `- session data: "with session data": ${POOL_SIZE} other sessions, each holding ${fmt(cartBytes, 0)} bytes in namespace \`cart\` (written beforehand through the session data endpoint), sent to GET ${DATA_PATH} (route \`cart\`, which declares that namespace, so its X-Session carries it as sg_data); ` +
        `"a write on every request": ${POOL_SIZE} more sessions, GET ${WRITE_PATH} (route \`visits\`), whose upstream PATCHes \`{"hits": n}\` to its gateway's SESSION_DATA_PORT with the X-Session it got, then answers`,
    );
  }

  let failed = false;
  let rounds = null;
  if (RUN_THROUGHPUT) {
    const targets = [
      { id: 'baseline', label: 'plain proxy (baseline)', port: base.value, pid: base.child.pid, cookies: poolCookies },
      { id: 'on-pool', label: `sessiongate, cache on, ${POOL_SIZE} sessions`, ...servedBy(gwOn), cookies: poolCookies, cache: true },
      { id: 'on-bearer', label: `sessiongate, cache on, ${POOL_SIZE} API keys (Bearer)`, ...servedBy(gwOn), cookies: poolKeys, header: 'authorization', cache: true },
      { id: 'on-single', label: 'sessiongate, cache on, 1 session', ...servedBy(gwOn), cookies: single, cache: true },
      // session data: what reading it costs (nothing extra, by design) and what a write per request costs
      ...(writer
        ? [
            { id: 'on-data', label: `sessiongate, cache on, ${POOL_SIZE} sessions with session data (reader route)`, ...servedBy(gwOther), cookies: dataCookies, path: DATA_PATH, info: true, detail: true },
            { id: 'on-write', label: 'sessiongate, cache on, a write on every request', ...servedBy(gwOther), cookies: writeCookies, path: WRITE_PATH, info: true, detail: true },
          ]
        : []),
      { id: 'off-pool', label: `sessiongate, cache off, ${POOL_SIZE} sessions`, ...servedBy(gwOff), cookies: poolCookies, cache: false },
      { id: 'off-single', label: 'sessiongate, cache off, 1 session', ...servedBy(gwOff), cookies: single, cache: false },
      // not a target: the gateway's cost without any session work, for diagnosis
      ...(fa
        ? [
            { id: 'fa-plain', label: 'forward auth: nginx, plain proxy_pass (no auth)', port: fa.plain.port, pid: fa.plain.child.pid, cookies: poolCookies, info: true },
            { id: 'fa-sessiongate', label: `forward auth: nginx auth_request → sessiongate, cache on, ${POOL_SIZE} sessions`, port: fa.viaSg.port, metricsPort: gwOther.metricsPort, pid: gwOther.child.pid, cookies: poolCookies, info: true },
            { id: 'fa-reference', label: `forward auth: nginx auth_request → hand-rolled endpoint (Redis GET + HMAC), ${POOL_SIZE} sessions`, port: fa.viaRef.port, pid: fa.ref.child.pid, cookies: poolCookies, info: true },
          ]
        : []),
      ...(gwW2
        ? [{ id: 'on-pool-w2', label: `sessiongate, cache on, ${POOL_SIZE} sessions, 2 workers (not pinned)`, ...servedBy(gwW2), cookies: poolCookies, info: true }]
        : []),
      ...(gwOtel
        ? [{ id: 'on-pool-otel', label: `sessiongate, cache on, ${POOL_SIZE} sessions, tracing on (OTLP)`, ...servedBy(gwOtel), cookies: poolCookies, info: true }]
        : []),
      { id: 'none', label: 'sessiongate, `auth: none` route', ...servedBy(gwOn), cookies: poolCookies, path: `${PUBLIC_PREFIX}/42`, info: true },
      // a hand-rolled session proxy, for reference (quick-gateway.mjs)
      { id: 'quick', label: `reference: fastify + ioredis GETEX + HMAC, no cache, ${POOL_SIZE} sessions`, port: quickNoCache.value, pid: quickNoCache.child.pid, cookies: poolCookies, info: true },
      { id: 'quick-lru', label: `reference: the same with a 1 s lru-cache, ${POOL_SIZE} sessions`, port: quickLru.value, pid: quickLru.child.pid, cookies: poolCookies, info: true },
      ...(gwB
        ? [
            { id: 'b-on-pool', label: `B: cache on, ${POOL_SIZE} sessions`, ...servedBy(gwB.on), cookies: poolCookies, cache: true },
            { id: 'b-on-bearer', label: `B: cache on, ${POOL_SIZE} API keys (Bearer)`, ...servedBy(gwB.on), cookies: poolKeys, header: 'authorization', cache: true },
            { id: 'b-on-single', label: 'B: cache on, 1 session', ...servedBy(gwB.on), cookies: single, cache: true },
            { id: 'b-off-pool', label: `B: cache off, ${POOL_SIZE} sessions`, ...servedBy(gwB.off), cookies: poolCookies, cache: false },
            { id: 'b-off-single', label: 'B: cache off, 1 session', ...servedBy(gwB.off), cookies: single, cache: false },
            { id: 'b-none', label: 'B: `auth: none` route', ...servedBy(gwB.on), cookies: poolCookies, path: `${PUBLIC_PREFIX}/42`, info: true },
          ]
        : []),
    ].filter((t) => wanted(t.id));
    if (!targets.some((t) => t.id === 'baseline')) throw new Error('BENCH_TARGETS must include baseline: every ratio is to it');
    say(
      `- procedure: ${WARMUP_S} s warm-up per target, then ${ROUNDS} rounds; in each round every target gets ${SETTLE_S} s of unmeasured load then ${DURATION_S} s measured, in an order rotated every round, ` +
        'and the baseline is measured before the first target and again after each one; figures are medians over rounds; a ratio to the baseline compares each interval with the mean of the two baseline intervals around it ' +
        '(a machine that speeds up or slows down during the run moves both alike), and is the median of those per-round ratios' +
        (TAIL_PAIRS > 0 ? '; the p99 goal is judged by the p99 phase that follows the rounds (described with its table)' : ''),
    );
    say();

    // not a target of the rounds: the p99 phase's control, a second process of the plain proxy
    const control = baseAA ? { id: 'aa', label: 'control: a second plain proxy process (A/A)', port: baseAA.value, cookies: poolCookies } : null;
    if (WARMUP_S > 0) {
      for (const t of [...targets, ...(control ? [control] : [])]) {
        log(`warm-up  ${t.label} (${WARMUP_S} s)`);
        const w = await drive(t.port, t.cookies, { path: t.path, header: t.header, seconds: WARMUP_S });
        if (w.other || w.errors) throw new Error(`${t.label}: ${w.other} non-2xx (${JSON.stringify(w.statuses)}), ${w.errors} errors during warm-up`);
      }
    }

    rounds = targets.map(() => []);
    let seq = 0;
    const bi = targets.findIndex((t) => t.id === 'baseline');
    const others = targets.map((_, i) => i).filter((i) => i !== bi);
    for (let r = 0; r < ROUNDS; r++) {
      // the baseline brackets every target: B T1 B T2 … Tn B
      const order = [bi];
      for (let k = 0; k < others.length; k++) order.push(others[(k + r) % others.length], bi);
      let before = null;
      let pending = null;
      for (const i of order) {
        const t = targets[i];
        await drive(t.port, t.cookies, { path: t.path, header: t.header, seconds: SETTLE_S });
        // let requests still in flight finish, so the counters bracket exactly one interval
        await sleep(QUIESCE_MS);
        const lookups0 = t.metricsPort ? await sessionLookups(t.metricsPort) : 0;
        const gw0 = t.detail ? await gatewayCounts(t.metricsPort) : null;
        const gc0 = t.metricsPort ? await gcMs(t.metricsPort) : null;
        const byName0 = t.detail ? await redisCommandStats(redis) : null;
        const cmds0 = await redisCommandCount(redis);
        const cpu0 = treeCpuSeconds(t.pid);
        const core0 = coreTimes();
        const res = await drive(t.port, t.cookies, { path: t.path, header: t.header, seconds: DURATION_S });
        const core1 = coreTimes();
        const cpu1 = treeCpuSeconds(t.pid);
        await sleep(QUIESCE_MS);
        const cmds1 = await redisCommandCount(redis);
        const byName1 = t.detail ? await redisCommandStats(redis) : null;
        const gw1 = t.detail ? await gatewayCounts(t.metricsPort) : null;
        const gc1 = t.metricsPort ? await gcMs(t.metricsPort) : null;
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
          // garbage collection of the gateway, ms per second measured (pauses and background work alike)
          gcMinor: gc0 && gc1 ? (gc1.minor - gc0.minor) / res.elapsed : NaN,
          gcMajor: gc0 && gc1 ? (gc1.major - gc0.major) / res.elapsed : NaN,
          heapMb: gc1 ? gc1.heapMb : NaN,
        };
        if (t.detail) {
          // where the commands come from: by name, and the gateway's own counts of re-reads and writes
          const perReq = (n) => n / Math.max(1, handled);
          m.byName = Object.fromEntries(
            Object.keys(byName1)
              .map((name) => [name, perReq(byName1[name] - (byName0[name] ?? 0))])
              .filter(([, v]) => v > 0),
          );
          m.fromRedis = perReq(gw1.fromRedis - gw0.fromRedis);
          m.writes = perReq(gw1.writes - gw0.writes);
        }
        if (i === bi) {
          m.base = m;
          // the target measured before this baseline interval gets the mean of the two around it
          if (pending) pending.base = meanOf(before, m);
          before = m;
          pending = null;
        } else {
          pending = m;
        }
        m.round = r;
        m.seq = seq++;
        rounds[i].push(m);
        log(
          `round ${r + 1}/${ROUNDS}  ${t.label.padEnd(40)} ${fmtInt(m.rps).padStart(7)} req/s  p50 ${fmt(m.p50)} ms  p99 ${fmt(m.p99)} ms  ` +
            `redis ${fmt(m.cmdsPerReq, 4)}/req  server CPU ${fmt(m.serverCpu, 0)}% ${fmt(m.cpuPerReqUs, 0)} µs/req` +
            (PIN ? `  core ${SERVER_CORE} other ${fmt(m.foreign, 0)}%  core ${DRIVER_CORE} busy ${fmt(m.driverBusy, 0)}%` : '') +
            `  load ${fmt(m.load1)}` +
            (t.metricsPort ? `  gc ${fmt(m.gcMinor, 1)}+${fmt(m.gcMajor, 1)} ms/s, heap ${fmt(m.heapMb, 0)} MB` : '') +
            (t.detail ? `  read from Redis ${fmt(m.fromRedis, 3)}/req, writes ${fmt(m.writes, 3)}/req` : '') +
            (m.other || m.errors ? `  !! ${m.other} non-2xx ${JSON.stringify(m.statuses)}, ${m.errors} errors` : ''),
        );
      }
    }

    if (process.env.BENCH_KEEP_LOGS === '1') {
      // every measured interval, `seq` its place in the run, with its latency histogram ([µs, count] pairs)
      const intervals = targets.map((t, i) => ({ id: t.id, intervals: rounds[i].map(keptInterval) }));
      fs.writeFileSync(path.join(workDir, 'intervals.json'), JSON.stringify(intervals));
    }

    // --- the p99 phase: the cache-on targets, and a second plain proxy as a control ----------
    const tailTargets = [...targets.filter((t) => t.cache), ...(control ? [control] : [])];
    const tail = TAIL_PAIRS > 0 && tailTargets.length ? await runTailPhase(targets[bi], tailTargets) : null;
    if (tail && process.env.BENCH_KEEP_LOGS === '1') {
      // every slice of the p99 phase, with its histogram, beside its pair
      const phase = tailTargets.map((t) => ({ id: t.id, target: tail.get(t.id).slices.target.map(keptInterval), base: tail.get(t.id).slices.base.map(keptInterval) }));
      fs.writeFileSync(path.join(workDir, 'p99-phase.json'), JSON.stringify(phase));
    }

    // --- summary -------------------------------------------------------------------------
    const summary = targets.map((t, i) => {
      const rs = rounds[i];
      return {
        target: t,
        rps: median(rs.map((m) => m.rps)),
        p50: median(rs.map((m) => m.p50)),
        p99: median(rs.map((m) => m.p99)),
        ratio: median(rs.map((m) => m.rps / m.base.rps)),
        p99Ratio: median(rs.map((m) => m.p99 / m.base.p99)),
        cmds: median(rs.map((m) => m.cmdsPerReq)),
        serverCpu: median(rs.map((m) => m.serverCpu)),
        cpuPerReqUs: median(rs.map((m) => m.cpuPerReqUs)),
        cpuRatio: median(rs.map((m) => m.base.cpuPerReqUs / m.cpuPerReqUs)),
        bad: rs.reduce((a, m) => a + m.other + m.errors, 0),
        ...(t.detail
          ? {
              fromRedis: median(rs.map((m) => m.fromRedis)),
              writes: median(rs.map((m) => m.writes)),
              byName: Object.fromEntries([...new Set(rs.flatMap((m) => Object.keys(m.byName)))].map((n) => [n, median(rs.map((m) => m.byName[n] ?? 0))])),
            }
          : {}),
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
    // two targets of the same round, each first taken relative to the baseline around it
    const ratioOf = (a, b, field = 'rps') => {
      const ia = targets.findIndex((t) => t.id === a);
      const ib = targets.findIndex((t) => t.id === b);
      return median(rounds[ia].map((m, k) => m[field] / m.base[field] / (rounds[ib][k][field] / rounds[ib][k].base[field])));
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
    if (byId('on-data') || byId('on-write')) {
      const on = byId('on-pool');
      const vsOn = (id) => (on ? ` (${fmt(ratioOf(id, 'on-pool'))}× the cache-on row, median of per-round ratios)` : '');
      const names = (s) => Object.entries(s.byName).sort((a, b) => b[1] - a[1]).map(([n, v]) => `${n} ${fmt(v, 3)}`).join(', ') || 'none';
      say();
      say('**Session data** (cache on; each target its own pool of sessions):');
      say();
      const d = byId('on-data');
      if (d) {
        say(
          `- reading: ${fmtInt(d.rps)} req/s${vsOn('on-data')}, ${fmt(d.ratio)}× the baseline; p99 ${fmt(d.p99)} ms; Redis ${fmt(d.cmds, 4)} cmds/req (${names(d)})` +
            (on ? ` against ${fmt(on.cmds, 4)} for the cache-on row; CPU µs/req ${fmt(d.cpuPerReqUs, 0)} against ${fmt(on.cpuPerReqUs, 0)}` : '') +
            `. The data is part of the session record, so the read that fetches the session fetches it, and the cache serves both; the X-Session carries it (about ${fmt(((`,"sg_data":{"cart":}`.length + cartBytes) * 4) / 3, 0)} more bytes of header, signed once per reuse period like the rest).`,
        );
      }
      const w = byId('on-write');
      if (w) {
        say(
          `- a write on every request: ${fmtInt(w.rps)} req/s${vsOn('on-write')}, ${fmt(w.ratio)}× the baseline; p50 ${fmt(w.p50)} ms, p99 ${fmt(w.p99)} ms; ` +
            `Redis ${fmt(w.cmds, 3)} cmds/req (${names(w)}); the gateway counted ${fmt(w.writes, 3)} writes/req and read ${fmt(w.fromRedis, 3)} sessions/req from Redis; CPU µs/req ${fmt(w.cpuPerReqUs, 0)} (the request and its write together). ` +
            'A write is one EVALSHA; Redis also counts the GET and SET the script runs inside it. Each write changes the session key, so key tracking drops the cached session on the gateway and the next request of that session reads it again (a GET).' +
            (w.bad ? ` **${w.bad} non-2xx responses or errors.**` : ''),
        );
      }
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
      if (i === bi) {
        const perRound = Array.from({ length: ROUNDS }, (_, r) => rounds[i].filter((m) => m.round === r).map((m) => fmtInt(m.rps)).join(', '));
        say(`- ${targets[i].label} (every interval of each round): ${perRound.join(' / ')}`);
      } else {
        say(`- ${targets[i].label}: ${rounds[i].map((m) => fmtInt(m.rps)).join(' / ')}`);
      }
    }
    if (PIN) {
      const foreign = Math.max(...rounds.flat().map((m) => m.foreign).filter(Number.isFinite));
      const driver = Math.max(...rounds.flat().map((m) => m.driverBusy).filter(Number.isFinite));
      say(`- most CPU taken on core ${SERVER_CORE} by anything but the server under test in one interval: ${fmt(foreign, 0)}%; busiest core ${DRIVER_CORE} (generator, Redis, upstream): ${fmt(driver, 0)}%`);
    }
    say(`- load average at end: ${loadavg()}`);
    say();

    if (tail) {
      describeTailPhase(say, tailTargets, tail);
      const aa = control && tail.get(control.id);
      if (aa) {
        say();
        say(
          `The control is a second process of the plain proxy itself: what it measures against the baseline is what this machine's noise alone does to the ratio in this phase (${fmt(aa.p99Ratio)}× at p99, ${fmt(aa.rpsRatio)} at req/s). ` +
            'The "p99 vs baseline" column of the rounds above compares single 5 s intervals and is noisier.',
        );
      }
      say();
    }

    // --- verdicts ------------------------------------------------------------------------
    const verdict = (ok) => (ok ? 'PASS' : 'FAIL');
    for (const s of summary) {
      if (s.target.id === 'baseline' || s.target.info) continue;
      const checks = [];
      if (s.target.cache) {
        checks.push([s.ratio >= TARGETS.cacheOnRatio, `ratio ${fmt(s.ratio)} ≥ ${TARGETS.cacheOnRatio}`]);
        const p99Ratio = tail?.get(s.target.id)?.p99Ratio ?? s.p99Ratio;
        checks.push([p99Ratio <= TARGETS.cacheOnP99, `p99 ${fmt(p99Ratio)}× ≤ ${TARGETS.cacheOnP99}× baseline${tail ? ' (p99 phase)' : ''}`]);
        checks.push([s.cmds <= TARGETS.cacheOnCmds, `Redis ${fmt(s.cmds, 4)} cmds/req ≤ ${TARGETS.cacheOnCmds}`]);
      } else {
        checks.push([s.ratio >= TARGETS.cacheOffRatio, `ratio ${fmt(s.ratio)} ≥ ${TARGETS.cacheOffRatio}`]);
        const ref = summary.find((x) => x.target.id === 'quick');
        if (ref && s.target.cookies === poolCookies) checks.push([s.ratio >= ref.ratio, `ratio ${fmt(s.ratio)} ≥ hand-rolled reference ${fmt(ref.ratio)}`]);
        checks.push([s.cmds <= TARGETS.cacheOffCmds, `Redis ${fmt(s.cmds, 4)} cmds/req ≤ ${TARGETS.cacheOffCmds}`]);
      }
      const bad = s.bad + (tail?.get(s.target.id)?.bad ?? 0);
      if (bad) checks.push([false, `${bad} non-2xx responses or errors`]);
      const ok = checks.every(([c]) => c);
      failed ||= !ok;
      say(`- ${verdict(ok)} ${s.target.label}: ${checks.map(([c, text]) => `${c ? '✓' : '✗'} ${text}`).join(', ')}`);
    }
    const faS = summary.find((x) => x.target.id === 'fa-sessiongate');
    const faR = summary.find((x) => x.target.id === 'fa-reference');
    const faP = summary.find((x) => x.target.id === 'fa-plain');
    if (faS && faR && faP) {
      // same-round ratios, each side relative to the baseline around it
      const vsRef = ratioOf('fa-sessiongate', 'fa-reference');
      const p99VsPlain = ratioOf('fa-sessiongate', 'fa-plain', 'p99');
      const okRef = vsRef >= TARGETS.forwardAuthVsReference;
      const okP99 = p99VsPlain <= TARGETS.forwardAuthP99;
      say(
        `- ${verdict(okRef && okP99)} forward auth (goals, not counted in the exit status): nginx → sessiongate ${fmtInt(faS.rps)} req/s, p99 ${fmt(faS.p99)} ms; ` +
          `${okRef ? '✓' : '✗'} ${fmt(vsRef)}× the hand-rolled endpoint's req/s (${fmtInt(faR.rps)}) ≥ ${TARGETS.forwardAuthVsReference}; ` +
          `${okP99 ? '✓' : '✗'} p99 ${fmt(p99VsPlain)}× plain nginx's (${fmt(faP.p99)} ms) ≤ ${TARGETS.forwardAuthP99}×; plain nginx ${fmtInt(faP.rps)} req/s`,
      );
    }
    const dataS = summary.find((x) => x.target.id === 'on-data');
    const onS = summary.find((x) => x.target.id === 'on-pool');
    if (dataS && onS) {
      const vsOn = ratioOf('on-data', 'on-pool');
      const okRatio = vsOn >= TARGETS.sessionDataReadVsCacheOn;
      const okCmds = dataS.cmds <= TARGETS.cacheOnCmds;
      say(
        `- ${verdict(okRatio && okCmds && !dataS.bad)} session data read (goals, not counted in the exit status): ${okRatio ? '✓' : '✗'} ${fmt(vsOn)}× the cache-on row's req/s ≥ ${TARGETS.sessionDataReadVsCacheOn}; ` +
          `${okCmds ? '✓' : '✗'} Redis ${fmt(dataS.cmds, 4)} cmds/req ≤ ${TARGETS.cacheOnCmds} (cache-on row ${fmt(onS.cmds, 4)})` +
          (dataS.bad ? `; ✗ ${dataS.bad} non-2xx responses or errors` : ''),
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
    const check = await memoryCheck(gwMem, redis);
    rss = check.rss;
    failed ||= !check.ok;
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
  (code) => {
    if (process.env.BENCH_KEEP_LOGS === '1') log(`logs kept in ${workDir}`);
    process.exit(code);
  },
  async (err) => {
    keepLogs();
    log(`bench failed: ${err?.stack ?? err}`);
    log(`logs kept in ${workDir}`);
    await stopChildren();
    process.exit(2);
  },
);
