import type { LRUCache } from 'lru-cache';
import type { Entry } from './entry.js';
import { growingLru } from './lru.js';

/** A read of Redis under way; an invalidation marks it cancelled, so what it returns is not cached. */
export interface InFlight {
  entry: Promise<Entry>;
  cancelled: boolean;
}

export interface SessionCacheSettings {
  max: number;
  ttlMs: number;
  negativeTtlMs: number;
  /** Drop expired entries on a timer (only while the cache is in use). */
  sweep: boolean;
  /** A session's entry left memory (expired and swept, evicted, or invalidated). */
  onLeave(sid: string, entry: Entry): void;
}

/**
 * The resolved sessions one gateway holds, by sid: a bounded LRU of entries, the reads of
 * Redis under way (concurrent misses for one session wait for the same read), and the
 * sessions last read while the cache was bypassed.
 */
export class SessionCache {
  private readonly lru: LRUCache<string, Entry>;
  private readonly inflight = new Map<string, InFlight>();
  private readonly negativeTtlMs: number;
  /** Most sessions held. */
  readonly max: number;
  private sweeper: NodeJS.Timeout | null = null;
  /**
   * Sessions last read while the cache was bypassed. Redis is still asked on every request;
   * a value identical to the last one is not parsed again, what later stages derived from it
   * is reused, and the due expiry refresh rides on the read itself.
   */
  private recentCache: LRUCache<string, Entry> | null = null;

  constructor(settings: SessionCacheSettings) {
    this.negativeTtlMs = settings.negativeTtlMs;
    this.max = settings.max;
    this.lru = growingLru<string, Entry>(settings.max, {
      ttl: settings.ttlMs,
      // the TTL counts from the last use: it only bounds the memory of sessions no longer in
      // use, since Redis reports every change and deadlines bound the rest (resolver)
      updateAgeOnGet: true,
      ttlAutopurge: false,
      // an expired entry stays until read again or swept, so its reload can carry over its
      // refresh time
      noDeleteOnStaleGet: true,
      dispose: (entry, sid, reason) => {
        // also on an invalidation: a change seen by tracking is most often a refresh's own
        // PEXPIRE, and the reload must know it was just refreshed
        if ((reason === 'expire' || reason === 'evict' || reason === 'delete') && entry.record) settings.onLeave(sid, entry);
      },
    });
    if (settings.sweep) {
      // expired entries are dropped twice per TTL: memory follows the sessions in use, not the max
      this.sweeper = setInterval(() => this.lru.purgeStale(), Math.max(1000, settings.ttlMs / 2));
      this.sweeper.unref();
    }
  }

  /** Number of sessions held. */
  get size(): number {
    return this.lru.size;
  }

  get(sid: string): Entry | undefined {
    return this.lru.get(sid);
  }

  /** The entry even past its TTL, while it is still held. */
  stale(sid: string): Entry | undefined {
    return this.lru.get(sid, { allowStale: true });
  }

  /** The read of this session under way, if any. */
  pending(sid: string): InFlight | undefined {
    return this.inflight.get(sid);
  }

  /** Starts one read of a session into the cache, shared by every request that misses meanwhile. */
  read(sid: string, load: () => Promise<Entry>): InFlight {
    const read = { cancelled: false } as InFlight;
    read.entry = load().then(
      (entry) => {
        if (this.inflight.get(sid) === read) this.inflight.delete(sid);
        if (!read.cancelled) this.lru.set(sid, entry, entry.record ? undefined : { ttl: this.negativeTtlMs });
        return entry;
      },
      (err: unknown) => {
        if (this.inflight.get(sid) === read) this.inflight.delete(sid);
        throw err;
      },
    );
    this.inflight.set(sid, read);
    return read;
  }

  /** The entry last read for this session while the cache was bypassed. */
  recent(sid: string): Entry | undefined {
    return this.recentCache?.get(sid);
  }

  keepRecent(sid: string, entry: Entry): void {
    // made on first use: a gateway whose cache is on may never need it
    (this.recentCache ??= growingLru<string, Entry>(this.max)).set(sid, entry);
  }

  dropRecent(sid: string): void {
    this.recentCache?.delete(sid);
  }

  /** Forgets one session, cached or recent (its read under way, if any, still lands). */
  delete(sid: string): void {
    this.lru.delete(sid);
    this.recentCache?.delete(sid);
  }

  /** Forgets one session and cancels its read under way (an invalidation). */
  invalidate(sid: string): void {
    this.delete(sid);
    const read = this.inflight.get(sid);
    if (read) {
      read.cancelled = true;
      this.inflight.delete(sid);
    }
  }

  /** Trusts nothing read before now: every cached session and every read under way. */
  forgetAll(): void {
    this.lru.clear();
    for (const read of this.inflight.values()) read.cancelled = true;
    this.inflight.clear();
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
  }
}
