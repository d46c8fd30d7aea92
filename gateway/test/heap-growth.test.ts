import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { runFixture } from '../../test/support/process.js';
import { growthPercentFor } from '../src/ops/heap.js';

// SESSIONGATE_HEAP_GROWTH and SESSIONGATE_HEAP_FLOOR: how far V8 lets the heap grow between
// full collections. The percent keeps a heap of 100,000 sessions near its live data; the
// floor lets a small heap under load go much longer between full collections, whose pauses
// reach every request in flight (docs/performance.md).

const MB = 1024 * 1024;
const CHILD = fileURLToPath(new URL('../../test/fixtures/heap-floor.mjs', import.meta.url));

describe('growthPercentFor', () => {
  const growth = { percent: 20, floorBytes: 64 * MB };

  it('is the percent alone without a floor', () => {
    expect(growthPercentFor(10 * MB, 10 * MB, { percent: 20, floorBytes: 0 })).toBe(20);
    expect(growthPercentFor(10 * MB, 10 * MB, { percent: 0, floorBytes: 0 })).toBe(0);
  });

  it('lifts a steady heap towards the floor, at most doubling it', () => {
    // 48 MB live: 64 MB is a third more
    expect(growthPercentFor(48 * MB, 48 * MB, growth)).toBe(33);
    // 20 MB live: 64 MB would be 220 % more; doubling is the most the floor gives
    expect(growthPercentFor(20 * MB, 20 * MB, growth)).toBe(100);
    // a heap that shrank is taken as it is now
    expect(growthPercentFor(40 * MB, 60 * MB, growth)).toBe(60);
  });

  it('keeps the percent at and above the floor', () => {
    expect(growthPercentFor(60 * MB, 60 * MB, growth)).toBe(20);
    expect(growthPercentFor(300 * MB, 290 * MB, growth)).toBe(20);
  });

  it('expects a growing heap to go on growing at its last pace', () => {
    // 16 → 32 MB since the last collection: the next is expected to find 64 MB
    expect(growthPercentFor(32 * MB, 16 * MB, growth)).toBe(20);
    // 30 → 32 MB: about 34 MB expected
    expect(growthPercentFor(32 * MB, 30 * MB, growth)).toBe(88);
  });
});

interface Run {
  steady: number;
  growth: number;
  peakUsedBytes: number;
  usedBytes: number;
}

async function runChild(percent: number, floorMb: number): Promise<Run> {
  return JSON.parse(await runFixture(CHILD, { env: { HEAP_GROWTH: String(percent), HEAP_FLOOR_MB: String(floorMb) } })) as Run;
}

describe('the heap growth in a process (V8 takes the percent while it runs)', () => {
  it('a heap below the floor collects far less often, and one growing past it peaks no higher', async () => {
    // about 45 MB live in the steady part: 20 % is 9 MB of headroom, a 200 MB floor lets it double
    const withFloor = await runChild(20, 200);
    const percentOnly = await runChild(20, 0);
    // the steady part promotes enough that 20 % alone means many full collections
    expect(percentOnly.steady).toBeGreaterThanOrEqual(15);
    expect(withFloor.steady).toBeLessThanOrEqual(percentOnly.steady / 2);
    // then the heap grows past the floor, to about 230 MB: the percent holds again
    expect(withFloor.usedBytes).toBeGreaterThan(200 * MB);
    expect(withFloor.peakUsedBytes).toBeLessThanOrEqual(percentOnly.peakUsedBytes * 1.15);
  }, 60_000);
});
