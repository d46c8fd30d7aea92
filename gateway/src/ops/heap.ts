import { PerformanceObserver, constants, type PerformanceEntry } from 'node:perf_hooks';
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';

/** When V8 runs its next full collection: the two settings behind SESSIONGATE_HEAP_GROWTH and SESSIONGATE_HEAP_FLOOR. */
export interface HeapGrowth {
  /** How far the heap may grow past what the last full collection kept, in percent (0: V8's own choice). */
  readonly percent: number;
  /** A heap below this many bytes may grow past the percent, up to it and at most doubling (0: none). */
  readonly floorBytes: number;
}

/** V8's young generation: a full collection's limit counts the old generation only. */
const YOUNG_SPACES = new Set(['new_space', 'new_large_object_space']);

/** The bytes in V8's old generation (every space but the young ones). */
function oldGenerationBytes(): number {
  let bytes = 0;
  for (const space of getHeapSpaceStatistics()) if (!YOUNG_SPACES.has(space.space_name)) bytes += space.space_used_size;
  return bytes;
}

/**
 * The most the floor lifts the growth to, in percent: a live heap that jumps between two
 * full collections (the floor was worked out from the smaller one) then gets at most twice
 * its size, not floor ÷ live times.
 */
const MAX_FLOOR_PERCENT = 100;

/**
 * The growth that puts the next full collection near the larger of `live × (1 + percent)`
 * and the floor. V8 takes one growth percent (`--heap-growing-percent`) and applies it to
 * the live heap of the collection after this one; a floor in bytes is that percent worked
 * out from the live heap that collection is expected to find: this one's, grown as much as
 * it grew since the previous one.
 */
export function growthPercentFor(liveBytes: number, previousLiveBytes: number, growth: HeapGrowth): number {
  if (growth.floorBytes <= 0 || liveBytes <= 0) return growth.percent;
  const expected = previousLiveBytes > 0 && liveBytes > previousLiveBytes ? (liveBytes * liveBytes) / previousLiveBytes : liveBytes;
  const toFloor = Math.round((growth.floorBytes / expected - 1) * 100);
  return Math.max(growth.percent, Math.min(MAX_FLOOR_PERCENT, toFloor));
}

/**
 * Applies the heap growth to this process, and keeps the floor after every full collection.
 * A cache of many sessions is long-lived data: V8's own growth lets the heap grow to up to
 * four times what a full collection keeps, hundreds of MB of garbage with 100,000 sessions,
 * hence the percent. A small heap under load, on the other hand, fills its 20 % (or V8's
 * smallest step, 8 MB) every half minute or so, and each full collection stalls the requests
 * in flight, hence the floor: a heap well below it may grow up to it (at most doubling), one
 * near or above it keeps the percent.
 *
 * V8 reads the percent when a full collection ends, to set the next one's limit; it is
 * worked out again as soon as Node.js reports that collection, for the one after.
 */
export function governHeapGrowth(growth: HeapGrowth): void {
  if (growth.percent <= 0) return;
  let applied = 0;
  let previous = 0;
  const apply = (): void => {
    const live = oldGenerationBytes();
    const percent = growthPercentFor(live, previous, growth);
    previous = live;
    if (percent === applied) return;
    setFlagsFromString(`--heap-growing-percent=${percent}`);
    applied = percent;
  };
  apply();
  if (growth.floorBytes <= 0) return;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if ((entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind !== constants.NODE_PERFORMANCE_GC_MAJOR) continue;
      apply();
      return;
    }
  }).observe({ entryTypes: ['gc'] });
}
