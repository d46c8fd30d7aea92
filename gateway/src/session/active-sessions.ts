import { sidBits } from './sid-bits.js';

/** The window of the `active_sessions` gauge. */
export const ACTIVE_WINDOW_MS = 5 * 60_000;

/** The window is counted in slots of this length: the current one and the last five whole ones. */
const SLOT_MS = 60_000;

/** Bits of a slot's bitmap, as a power of two: 2^20 bits, 128 KiB a slot. */
const BITMAP_BITS = 20;
const BITMAP_MASK = (1 << BITMAP_BITS) - 1;
const BITMAP_WORDS = (1 << BITMAP_BITS) / 32;

/**
 * Distinct sessions seen within a sliding window, for the `active_sessions` gauge, in a fixed
 * amount of memory whatever the number of sessions: one bitmap per minute of the window,
 * a session setting the bit that 20 bits of its sid pick. The count is the linear-counting
 * estimate over the bitmaps of the window ORed together: from the bits left unset it makes
 * up for sessions that share a bit, and is exact for a few sessions, within about 0.1% for a
 * million. (A map of the sessions themselves took about 35 bytes a session: 3.5 MB of heap
 * for 100,000, and every full garbage collection went over it.)
 */
export class ActiveSessions {
  /** A bitmap per slot of the window, made on first use, and the slot number it holds. */
  private readonly bitmaps: (Uint32Array | undefined)[];
  private readonly slotOf: number[];
  private readonly merged = new Uint32Array(BITMAP_WORDS);

  constructor(private readonly windowMs: number = ACTIVE_WINDOW_MS) {
    const slots = Math.ceil(windowMs / SLOT_MS) + 1;
    this.bitmaps = Array.from({ length: slots }, () => undefined);
    this.slotOf = Array.from({ length: slots }, () => -1);
  }

  /**
   * Counts the session held by `entry` as seen now, at most once a second per entry: the
   * count is only read at scrape time.
   */
  noteEntry(entry: { seenAtSecond: number }, sid: string, now: number): void {
    const second = Math.floor(now / 1000);
    if (entry.seenAtSecond === second) return;
    entry.seenAtSecond = second;
    this.note(sid, now);
  }

  note(sid: string, now: number): void {
    const slot = Math.floor(now / SLOT_MS);
    const at = slot % this.bitmaps.length;
    let bitmap = this.bitmaps[at];
    if (this.slotOf[at] !== slot) {
      // a slot that left the window is used again for the current one
      if (bitmap) bitmap.fill(0);
      else bitmap = this.bitmaps[at] = new Uint32Array(BITMAP_WORDS);
      this.slotOf[at] = slot;
    }
    const bit = sidBits(sid, 4) & BITMAP_MASK;
    bitmap![bit >>> 5]! |= 1 << (bit & 31);
  }

  /** Distinct sessions seen within the window (the slots that overlap it) before `now`. */
  count(now: number): number {
    const current = Math.floor(now / SLOT_MS);
    const oldest = Math.floor((now - this.windowMs) / SLOT_MS);
    const merged = this.merged;
    merged.fill(0);
    let any = false;
    for (let i = 0; i < this.bitmaps.length; i++) {
      const bitmap = this.bitmaps[i];
      const slot = this.slotOf[i]!;
      if (!bitmap || slot < oldest || slot > current) continue;
      any = true;
      for (let w = 0; w < BITMAP_WORDS; w++) merged[w]! |= bitmap[w]!;
    }
    if (!any) return 0;
    let set = 0;
    for (let w = 0; w < BITMAP_WORDS; w++) set += bitCount(merged[w]!);
    return linearCount(1 << BITMAP_BITS, set);
  }
}

/** Set bits of a 32-bit word. */
function bitCount(word: number): number {
  let v = word - ((word >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/**
 * Distinct items that set `set` of `bits` bits, each at a uniformly random place: bits × ln(bits
 * ÷ unset). With every bit set it can only say "at least this many".
 */
export function linearCount(bits: number, set: number): number {
  const unset = bits - set;
  return Math.round(bits * Math.log(bits / Math.max(unset, 1)));
}
