import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from './support/process.js';
// the bench's own histogram helpers, as bench/run.mjs uses them
// @ts-expect-error: plain JavaScript without type declarations
import { histOfMs, histOfWrk, pooledPercentile } from '../bench/lib/latency.mjs';

// The bench judges the p99 goal on latency histograms pooled over many slices
// (docs/performance.md): these helpers must give the percentile of all the requests together.

type Hist = Map<number, number>;
const hist = histOfMs as (samples: Iterable<number>) => Hist;
const ofWrk = histOfWrk as (text: string) => Hist | null;
const pooled = pooledPercentile as (parts: { hist: Hist | null; weight?: number }[], p: number) => number;

/** The nearest-rank percentile of plain samples. */
function nearestRank(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

describe('pooled latency histograms', () => {
  it('give the percentile of all the requests of several runs together', () => {
    // three runs of different shapes, in whole microseconds as wrk records them
    const runs = [
      Array.from({ length: 5000 }, (_, i) => 4 + (i % 97) / 100),
      Array.from({ length: 3000 }, (_, i) => 6 + (i % 13) / 10 + (i % 500 === 0 ? 40 : 0)),
      Array.from({ length: 7000 }, (_, i) => 3.5 + (i % 31) / 20),
    ];
    const all = runs.flat();
    for (const p of [50, 90, 99, 99.9]) {
      expect(pooled(runs.map((r) => ({ hist: hist(r) })), p)).toBeCloseTo(nearestRank(all, p), 3);
    }
    // a single run is its own percentile
    expect(pooled([{ hist: hist(runs[1]!) }], 99)).toBeCloseTo(nearestRank(runs[1]!, 99), 3);
  });

  it('count a weighted run as that many copies of it', () => {
    const fast = Array.from({ length: 1000 }, () => 2);
    const slow = Array.from({ length: 1000 }, () => 20);
    // equal weights: half the requests are slow, so the median sits on the fast side's edge
    expect(pooled([{ hist: hist(fast) }, { hist: hist(slow) }], 50)).toBe(2);
    // the slow run counted three times: three requests in four are slow
    expect(pooled([{ hist: hist(fast) }, { hist: hist(slow), weight: 3 }], 50)).toBe(20);
    expect(pooled([{ hist: hist(fast), weight: 0.5 }, { hist: hist(slow), weight: 0.5 }], 50)).toBe(2);
  });

  it('are NaN without any histogram, and skip a run that has none', () => {
    expect(pooled([], 99)).toBeNaN();
    expect(pooled([{ hist: null }], 99)).toBeNaN();
    expect(pooled([{ hist: null }, { hist: hist([1, 2, 3]) }], 50)).toBe(2);
  });

  it("read the HIST line of the bench's wrk script and nothing else", () => {
    expect(ofWrk('Running 2s test\nRequests/sec: 1000\n')).toBeNull();
    const h = ofWrk('  1000 requests in 1.00s\nHIST 120:3 450:1 9000:2\nTransfer/sec: 1MB\n');
    expect(h && [...h]).toEqual([
      [120, 3],
      [450, 1],
      [9000, 2],
    ]);
  });
});

describe('bench/p99-spread.mjs', () => {
  // a phase of 20 pairs as BENCH_KEEP_LOGS=1 writes it: slices of [µs, count] pairs
  const slice = (fastUs: number, slowUs: number, slow: number) => ({ hist: [[fastUs, 1000 - slow], [slowUs, slow]] });
  const spread = (phase: unknown) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'p99-spread-'));
    try {
      fs.writeFileSync(path.join(dir, 'p99-phase.json'), JSON.stringify(phase));
      const run = spawnSync(process.execPath, [path.join(ROOT, 'bench/p99-spread.mjs'), dir, '10'], { encoding: 'utf8' });
      expect(run.status, run.stderr).toBe(0);
      return run.stdout;
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };

  it('gives an identical server 1.00× with no spread, and a slower tail its ratio', () => {
    const base = Array.from({ length: 20 }, () => slice(4000, 20000, 20));
    const out = spread([
      { id: 'aa', target: base, base },
      // every slice's slowest 2% at 30 ms instead of 20: the pooled p99 is 1.5×
      { id: 'slow', target: Array.from({ length: 20 }, () => slice(4000, 30000, 20)), base },
    ]);
    expect(out).toContain('aa: 20 pairs, pooled p99 ratio 1.00×');
    expect(out).toMatch(/aa: .*\n {2} 10 pairs: 5–95% 1\.00–1\.00×, sd 0\.000, over 1\.2× in 0% of draws/);
    expect(out).toContain('slow: 20 pairs, pooled p99 ratio 1.50×');
    expect(out).toMatch(/slow: .*\n {2} 10 pairs: 5–95% 1\.50–1\.50×, sd 0\.000, over 1\.2× in 100% of draws/);
  });

  it('spreads the ratio when pairs differ, drawing pairs together', () => {
    // half the pairs have a stall in both slices, half in neither: drawn as pairs, the
    // ratio stays 1.00×; half the target slices alone slow gives a spread around the middle
    const calm = slice(4000, 5000, 20);
    const stalled = slice(4000, 40000, 20);
    const base = Array.from({ length: 20 }, (_, i) => (i % 2 ? stalled : calm));
    const out = spread([
      { id: 'paired', target: base, base },
      { id: 'unpaired', target: base, base: Array.from({ length: 20 }, () => calm) },
    ]);
    expect(out).toMatch(/paired: .*\n {2} 10 pairs: 5–95% 1\.00–1\.00×/);
    const sd = Number(/unpaired: .*\n {2} 10 pairs: .*sd (\d\.\d+)/.exec(out)?.[1]);
    expect(sd).toBeGreaterThan(0.5);
  });
});

const wrk = spawnSync('wrk', ['-v'], { encoding: 'utf8' });
const haveWrk = !wrk.error;

// needs wrk (Debian package `wrk`, which .ci/run installs); without it the bench uses autocannon
describe.skipIf(!haveWrk)("the bench's wrk script against a real server", () => {
  let server: http.Server;
  let port = 0;
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      // a slow request now and then, so the tail differs from the median
      const slow = Math.random() < 0.02;
      setTimeout(() => res.end('ok'), slow ? 15 : 0);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('prints a histogram whose percentiles are the ones wrk prints', async () => {
    const cookies = path.join(ROOT, 'test', 'fixtures', 'bench-cookies.txt');
    // not spawnSync: the server answers from this process
    const r = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve, reject) => {
      const child = spawn('wrk', ['-t1', '-c8', '-d1s', '--latency', '-s', path.join(ROOT, 'bench', 'wrk-cookies.lua'), `http://127.0.0.1:${port}/`, '--', cookies]);
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d));
      child.stderr.on('data', (d: Buffer) => (stderr += d));
      child.on('error', reject);
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });
    expect(r.status, r.stderr).toBe(0);
    const h = ofWrk(r.stdout);
    expect(h).not.toBeNull();
    const counted = [...h!.values()].reduce((a, b) => a + b, 0);
    expect(counted).toBeGreaterThan(100);
    // wrk's own percentiles, as "99%   15.12ms"
    const printed = (p: number) => {
      const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s)$`, 'm').exec(r.stdout);
      expect(m, r.stdout).not.toBeNull();
      const v = Number(m![1]);
      return m![2] === 'us' ? v / 1000 : m![2] === 's' ? v * 1000 : v;
    };
    for (const p of [50, 99]) {
      // wrk prints two decimals: within 1% or 10 µs of what the histogram gives
      const fromHist = pooled([{ hist: h }], p);
      expect(Math.abs(fromHist - printed(p))).toBeLessThanOrEqual(Math.max(0.01, printed(p) * 0.01));
    }
    // the slow requests are in it: the tail is above the median
    expect(pooled([{ hist: h }], 99)).toBeGreaterThan(pooled([{ hist: h }], 50) * 3);
  });
});
