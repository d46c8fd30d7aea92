#!/usr/bin/env node
// How far the p99 phase's verdict moves by chance: reads the p99-phase.json of a bench run
// kept with BENCH_KEEP_LOGS=1 and, for each target, draws many phases of N pairs from its
// pairs (with replacement) and prints the spread of the pooled p99 ratio they give. The
// control (`aa`, an identical server) shows the spread that noise alone gives.
//
//   node bench/p99-spread.mjs <folder or p99-phase.json> [pairs …]     (pairs: 10 20)
import fs from 'node:fs';
import path from 'node:path';
import { pooledPercentile } from './lib/latency.mjs';

const [where, ...sizes] = process.argv.slice(2);
if (!where || where === '-h' || where === '--help') {
  console.log('Usage: node bench/p99-spread.mjs <folder of a BENCH_KEEP_LOGS=1 run, or its p99-phase.json> [pairs …]');
  process.exit(where ? 0 : 2);
}
const file = fs.statSync(where).isDirectory() ? path.join(where, 'p99-phase.json') : where;
const phase = JSON.parse(fs.readFileSync(file, 'utf8'));
const pairCounts = sizes.length ? sizes.map(Number) : [10, 20];
const DRAWS = 1000;

// mulberry32 from a fixed seed: the same file always prints the same figures
let seed = 0x5eed;
const random = () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
  return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
};
const p99 = (slices, picks) => pooledPercentile(picks.map((i) => ({ hist: slices[i].hist })), 99);
const ratio = (t, picks) => p99(t.target, picks) / p99(t.base, picks);
const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

for (const t of phase) {
  const n = Math.min(t.target.length, t.base.length);
  const all = [...Array(n).keys()];
  console.log(`${t.id}: ${n} pairs, pooled p99 ratio ${ratio(t, all).toFixed(2)}×`);
  for (const k of pairCounts) {
    const draws = Array.from({ length: DRAWS }, () => ratio(t, Array.from({ length: k }, () => Math.floor(random() * n)))).sort((a, b) => a - b);
    const mean = draws.reduce((a, b) => a + b, 0) / DRAWS;
    const sd = Math.sqrt(draws.reduce((a, b) => a + (b - mean) ** 2, 0) / DRAWS);
    const over = draws.filter((r) => r > 1.2).length / DRAWS;
    console.log(
      `  ${String(k).padStart(3)} pairs: 5–95% ${quantile(draws, 0.05).toFixed(2)}–${quantile(draws, 0.95).toFixed(2)}×, sd ${sd.toFixed(3)}, over 1.2× in ${(over * 100).toFixed(0)}% of draws`,
    );
  }
}
