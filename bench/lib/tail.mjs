// The p99 phase: tail latency compared in short slices, each paired with a baseline slice
// next to it, and percentiles taken over all the requests of a side pooled.
//
// Why not the rounds: a p99 is the slowest 1% of requests, and on a shared machine the
// slowest 1% of a 5 s interval is mostly made of the few stalls of the whole machine that
// happened to fall into it (tens of ms each, a handful per interval). Two intervals of the
// same server differ by half at p99. Slices of a couple of seconds, alternating between the
// baseline and the target many times, give both the same stretches of the machine, and
// pooling all their requests counts many stalls instead of a few.
import { CONNECTIONS, SETTLE_S, TAIL_PAIRS, TAIL_SLICE_S } from './config.mjs';
import { pooledPercentile } from './latency.mjs';
import { drive } from './load.mjs';
import { log } from './proc.mjs';
import { fmt, fmtInt, gcMs } from './checks.mjs';

/**
 * Runs the phase for `targets` against `baseline` (target objects as in run.mjs): for each
 * target in turn, TAIL_PAIRS pairs of slices, the baseline slice first in even pairs and
 * second in odd ones. Resolves to a Map of target id → { p50, p99, baseP50, baseP99,
 * p99Ratio, rpsRatio, requests, baseRequests, bad, slices }.
 */
export async function runTailPhase(baseline, targets) {
  const sides = new Map(targets.map((t) => [t.id, { target: [], base: [] }]));
  const slice = (t, seconds = TAIL_SLICE_S) => drive(t.port, t.cookies, { path: t.path, header: t.header, seconds });
  for (const t of targets) {
    const side = sides.get(t.id);
    // unmeasured, as before every interval of the rounds: what the target's caches dropped
    // while other targets ran (the session cache keeps a session 5 s past its last use) is
    // read back before the slices count
    await slice(t, SETTLE_S);
    // B T T B B T T B …: a target waits at most two slices between its own, and a drift of the
    // machine's speed falls alike on both sides
    for (let k = 0; k < TAIL_PAIRS; k++) {
      for (const s of k % 2 === 0 ? [baseline, t] : [t, baseline]) {
        // a gateway's collection time during the slice, to set its slow slices beside
        const gc0 = s.metricsPort ? await gcMs(s.metricsPort) : null;
        const at = Date.now();
        const res = await slice(s);
        const gc1 = s.metricsPort ? await gcMs(s.metricsPort) : null;
        if (gc0 && gc1) Object.assign(res, { gcMinor: (gc1.minor - gc0.minor) / res.elapsed, gcMajor: (gc1.major - gc0.major) / res.elapsed, lagMaxMs: gc1.lagMaxMs });
        (s === baseline ? side.base : side.target).push({ ...res, at });
        log(
          `p99 phase ${k + 1}/${TAIL_PAIRS}  ${s.label.padEnd(48)} ${fmtInt(res.rps).padStart(7)} req/s  p50 ${fmt(res.p50)} ms  p99 ${fmt(res.p99)} ms` +
            (gc0 && gc1 ? `  gc ${fmt(res.gcMinor, 1)}+${fmt(res.gcMajor, 1)} ms/s, longest stall ${fmt(res.lagMaxMs, 0)} ms` : ''),
        );
      }
    }
  }
  const results = new Map();
  for (const t of targets) {
    const { target, base } = sides.get(t.id);
    const rate = (rs) => rs.reduce((a, r) => a + r.ok, 0) / rs.reduce((a, r) => a + r.elapsed, 0);
    const pct = (rs, p) => pooledPercentile(rs.map((r) => ({ hist: r.hist })), p);
    const r = {
      p50: pct(target, 50),
      p99: pct(target, 99),
      baseP50: pct(base, 50),
      baseP99: pct(base, 99),
      requests: target.reduce((a, x) => a + x.ok + x.other, 0),
      baseRequests: base.reduce((a, x) => a + x.ok + x.other, 0),
      rpsRatio: rate(target) / rate(base),
      bad: target.reduce((a, x) => a + x.other + x.errors, 0),
      // each slice in the order run, for p99-phase.json (BENCH_KEEP_LOGS=1)
      slices: { target, base },
    };
    r.p99Ratio = r.p99 / r.baseP99;
    results.set(t.id, r);
  }
  return results;
}

/** The phase's table, for the results file. */
export function describeTailPhase(say, targets, results) {
  say(
    `**p99 phase** (what the p99 goal is judged by): for each target in turn, ${SETTLE_S} s of unmeasured load, then ${TAIL_PAIRS} slices of ${TAIL_SLICE_S} s, ` +
      `each paired with a baseline slice right before or after it (B T T B B T …), ${CONNECTIONS} connections; every percentile is over all the requests of a side pooled.`,
  );
  say();
  say('| target | requests | p50 ms | p99 ms | baseline p50 ms | baseline p99 ms | p99 vs baseline | req/s vs baseline |');
  say('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const t of targets) {
    const r = results.get(t.id);
    say(`| ${t.label} | ${fmtInt(r.requests)} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(r.baseP50)} | ${fmt(r.baseP99)} | ${fmt(r.p99Ratio)}× | ${fmt(r.rpsRatio)} |`);
  }
}
