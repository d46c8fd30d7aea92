import { remainingLifetimeMs, type SessionRef, type SessionStore } from '@sessiongate/session';
import type { Entry } from './entry.js';
import { sidBits } from './sid-bits.js';

/** Whether Redis answered the last command of the request path (shared by the reads and the refreshes). */
export interface StoreHealth {
  failing: boolean;
}

/** 48 bits of a sid (a hash of the token), exactly representable as a number. */
function touchKey(sid: string): number {
  return sidBits(sid, 8);
}

/** Precision of the refresh times remembered for sessions that left the cache. */
const TOUCH_UNIT_MS = 10;

/**
 * Paces the sliding idle expiry: a session's is pushed forward at most once per refresh
 * interval (a fraction of its idle timeout) by this gateway, never by rewriting the record.
 */
export class RefreshPacer {
  /**
   * When sessions that left the cache (expired and swept, evicted or invalidated) were last
   * refreshed, in TOUCH_UNIT_MS since `base` (a small integer, stored inline), rounded down
   * (a deadline derived from it is never late), oldest first and at most `max`, keyed by 48 bits of the sid:
   * some fifty bytes each instead of the whole entry, so their next read still knows whether
   * a refresh is due. (That any two of 100 000 sessions share a key is about a one in a
   * million chance; if they did, one refresh could come an interval late, well within the
   * idle timeout of ten intervals.)
   */
  private readonly lastTouch = new Map<number, number>();
  private readonly base = Date.now();

  constructor(
    private readonly store: SessionStore,
    private readonly fraction: number,
    private readonly max: number,
    private readonly health: StoreHealth,
    private readonly log: { warn(obj: object, msg: string): void },
  ) {}

  /** Remembers when a session leaving memory was last refreshed. */
  remember(sid: string, touchedAt: number): void {
    const key = touchKey(sid);
    this.lastTouch.delete(key);
    this.lastTouch.set(key, Math.floor((touchedAt - this.base) / TOUCH_UNIT_MS));
    if (this.lastTouch.size > this.max) {
      const oldest = this.lastTouch.keys().next();
      if (!oldest.done) this.lastTouch.delete(oldest.value);
    }
  }

  /**
   * When a session about to be read again was last refreshed, if known: from its expired
   * entry, else from what was remembered when it left memory (taken: the new entry carries it).
   */
  lastRefreshOf(sid: string, stale: Entry | undefined): number | undefined {
    if (stale?.record) return stale.touchedAt;
    const key = touchKey(sid);
    const units = this.lastTouch.get(key);
    if (units === undefined) return undefined;
    this.lastTouch.delete(key);
    return this.base + units * TOUCH_UNIT_MS;
  }

  /**
   * When this gateway has not pushed the idle expiry forward for a refresh interval, claims
   * the refresh and answers the TTL to set (never past the absolute expiry); otherwise null.
   */
  claim(entry: Entry, now: number): number | null {
    const record = entry.record;
    if (!record) return null;
    // a session is as fresh as its creation until this gateway touches it
    if (now - entry.touchedAt < record.idleTimeoutMs * this.fraction) return null;
    const ttl = remainingLifetimeMs(record, now);
    // past the absolute expiry: the resolver refuses and removes the session
    if (ttl <= 0) return null;
    entry.touchedAt = now;
    return Math.ceil(ttl);
  }

  /** Pushes the idle expiry forward (PEXPIRE, in the background) when a refresh is due. */
  touchIfDue(ref: SessionRef, entry: Entry, now: number): void {
    const previousTouch = entry.touchedAt;
    if (this.claim(entry, now) === null) return;
    const record = entry.record!;
    this.store.touch(ref, record, now).then(
      () => {
        this.health.failing = false;
      },
      (err: unknown) => {
        this.health.failing = true;
        // let the next request try again
        if (entry.touchedAt === now) entry.touchedAt = previousTouch;
        this.log.warn({ err }, 'session refresh failed');
      },
    );
  }
}
