import { sidBits } from './sid-bits.js';

/** The window of the `active_sessions` gauge. */
export const ACTIVE_WINDOW_MS = 5 * 60_000;

/**
 * Distinct sessions seen within a sliding window, for the `active_sessions` gauge, in a few
 * dozen bytes per session: keyed by 30 bits of the sid (small integers, no strings),
 * valued by the second last seen. Among 100 000 sessions about five share a key, so the count
 * may be short by that much. Stale keys are dropped when counted and once a minute; past
 * `limit` keys the map starts over rather than grow.
 */
export class ActiveSessions {
  private readonly lastSeen = new Map<number, number>();
  private lastSweep = 0;

  constructor(
    private readonly windowMs: number,
    private readonly limit: number,
  ) {}

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
    if (now - this.lastSweep >= 60_000) this.sweep(now);
    if (this.lastSeen.size >= this.limit) this.lastSeen.clear();
    this.lastSeen.set(sidBits(sid, 5), Math.floor(now / 1000));
  }

  count(now: number): number {
    this.sweep(now);
    return this.lastSeen.size;
  }

  private sweep(now: number): void {
    this.lastSweep = now;
    const cutoff = Math.floor((now - this.windowMs) / 1000);
    for (const [key, second] of this.lastSeen) if (second < cutoff) this.lastSeen.delete(key);
  }
}
