import { LRUCache } from 'lru-cache';
import { InvalidRecordError, hashToken, isWellFormedToken, parseRecord, type SessionRecord } from './record.js';
import { subscriberFor } from './redis.js';
import { decodeInvalidation, type RedisClient, type SessionStore } from './store.js';

/** Most sessions one gateway keeps resolved in memory. @default 100_000 */
export const DEFAULT_CACHE_MAX = 100_000;
/** How long a resolved session is reused without asking Redis (revocations arrive by pub/sub sooner). @default 5000 */
export const DEFAULT_CACHE_TTL_MS = 5_000;
/** How long an unknown or malformed token is remembered as such. @default 1000 */
export const DEFAULT_NEGATIVE_TTL_MS = 1_000;
/** The idle expiry is pushed forward at most once per this fraction of the idle timeout. @default 0.1 */
export const DEFAULT_REFRESH_FRACTION = 0.1;
/** How often the invalidation connection is pinged to prove revocations can still arrive. @default 250 */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 250;
/** A ping on the invalidation connection unanswered this long bypasses the cache until it answers. @default 500 */
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 500;

/** The window of `activeSessions`. */
const ACTIVE_WINDOW_MS = 5 * 60_000;

export type LookupOutcome = 'valid' | 'missing' | 'expired' | 'invalid' | 'store_error';
export type LookupSource = 'cache' | 'redis' | 'none';

/** A signed X-Session kept for reuse, per route. */
export interface CachedIdentity {
  readonly token: string;
  /** Reuse it until then (half its lifetime). */
  readonly reuseUntil: number;
}

/** A session that resolved. `identities` lets the signer reuse headers while the entry lives. */
export interface ResolvedSession {
  readonly record: SessionRecord;
  readonly tokenHash: string;
  readonly identities: Map<string, CachedIdentity> | null;
}

export type Lookup =
  | { outcome: 'valid'; source: 'cache' | 'redis'; session: ResolvedSession }
  | { outcome: 'missing' | 'expired' | 'invalid'; source: LookupSource; reason?: string }
  | { outcome: 'store_error'; source: 'redis'; error: Error };

export interface SessionCacheOptions {
  /** Resolve from memory while the invalidation channel is subscribed. @default true */
  enabled?: boolean;
  /** @default DEFAULT_CACHE_MAX */
  max?: number;
  /** @default DEFAULT_CACHE_TTL_MS */
  ttlMs?: number;
  /** @default DEFAULT_NEGATIVE_TTL_MS */
  negativeTtlMs?: number;
}

export interface SessionResolverOptions {
  cache?: SessionCacheOptions;
  /** @default DEFAULT_REFRESH_FRACTION */
  refreshFraction?: number;
  /**
   * A silent Redis (paused, or a network path that drops packets without closing the
   * connection) never closes the subscription, so the cache is trusted only while a ping on
   * that connection is answered: from a stall to no more cache hits takes at most
   * `intervalMs + timeoutMs` (the timeout rounded up to whole intervals): 750 ms by default.
   */
  heartbeat?: {
    /** @default DEFAULT_HEARTBEAT_INTERVAL_MS */
    intervalMs?: number;
    /** @default DEFAULT_HEARTBEAT_TIMEOUT_MS */
    timeoutMs?: number;
  };
  /** Where the resolver reports what happened to its subscription and refreshes. */
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
  now?: () => number;
}

interface Entry {
  record: SessionRecord | null;
  /** Why there is no record: 'expired' (unknown token) or 'invalid' (corrupt record). */
  negative: 'expired' | 'invalid' | null;
  reason?: string;
  identities: Map<string, CachedIdentity>;
}

const noopLog = { info() {}, warn() {} };

/**
 * Turns a cookie token into a session: through a bounded in-memory cache while revocations
 * can reach it (the pub/sub channel is subscribed), straight from Redis otherwise. Concurrent
 * misses for one token share one Redis call. The sliding idle expiry is pushed forward at
 * most once per refresh interval per session, never by rewriting the record.
 */
export class SessionResolver {
  readonly store: SessionStore;
  private readonly cacheEnabled: boolean;
  private readonly cacheTtlMs: number;
  private readonly negativeTtlMs: number;
  private readonly refreshFraction: number;
  private readonly cache: LRUCache<string, Entry, void>;
  /** When this gateway last pushed each session's expiry forward (bounded like the cache). */
  private readonly touchedAt: LRUCache<string, number>;
  private readonly seen: LRUCache<string, true>;
  private readonly log: NonNullable<SessionResolverOptions['log']>;
  private readonly now: () => number;
  private subscriber: RedisClient | null = null;
  private subscribed = false;
  private stopped = false;
  private readonly heartbeatIntervalMs: number;
  private readonly heartbeatTimeoutMs: number;
  private heartbeat: NodeJS.Timeout | null = null;
  /** When the unanswered ping on the invalidation connection was sent (monotonic ms), or null. */
  private pingSentAt: number | null = null;
  /** That ping went unanswered past the heartbeat timeout. */
  private channelSilent = false;
  /** The last command on the request path failed: Redis may not be answering anyone. */
  private storeFailing = false;

  constructor(store: SessionStore, opts: SessionResolverOptions = {}) {
    this.store = store;
    const c = opts.cache ?? {};
    this.cacheEnabled = c.enabled ?? true;
    this.cacheTtlMs = c.ttlMs ?? DEFAULT_CACHE_TTL_MS;
    this.negativeTtlMs = c.negativeTtlMs ?? DEFAULT_NEGATIVE_TTL_MS;
    this.refreshFraction = opts.refreshFraction ?? DEFAULT_REFRESH_FRACTION;
    this.log = opts.log ?? noopLog;
    this.now = opts.now ?? Date.now;
    this.heartbeatIntervalMs = opts.heartbeat?.intervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
    this.heartbeatTimeoutMs = opts.heartbeat?.timeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS;
    const max = c.max ?? DEFAULT_CACHE_MAX;
    this.cache = new LRUCache<string, Entry, void>({
      max,
      ttl: this.cacheTtlMs,
      ttlAutopurge: false,
      fetchMethod: (tokenHash, _stale, { options }) => this.load(tokenHash, options),
    });
    this.touchedAt = new LRUCache<string, number>({ max });
    this.seen = new LRUCache<string, true>({ max, ttl: ACTIVE_WINDOW_MS, ttlResolution: 1000 });
  }

  /**
   * True while resolved sessions are served from memory: the invalidation channel is
   * subscribed and answering, and Redis answered the last command of the request path.
   * Otherwise every lookup asks Redis, so a Redis that is gone or silent fails closed.
   */
  get cacheActive(): boolean {
    return this.cacheEnabled && this.subscribed && !this.stopped && !this.storeFailing && !this.channelSilent && this.store.redis.status === 'ready';
  }

  /** Distinct sessions resolved in the last 5 minutes (computed when asked: at scrape time). */
  get activeSessions(): number {
    this.seen.purgeStale();
    return this.seen.size;
  }

  /** Number of sessions held in memory. */
  get cacheSize(): number {
    return this.cache.size;
  }

  /**
   * Subscribes to the invalidation channel on a connection of its own. Until that
   * subscription stands (and whenever it drops), every lookup goes to Redis.
   */
  async start(): Promise<void> {
    if (!this.cacheEnabled || this.subscriber) return;
    const sub = subscriberFor(this.store.redis);
    this.subscriber = sub;
    const channel = this.store.keys.invalidationChannel;
    sub.on('message', (ch: string, raw: string) => {
      if (ch !== channel) return;
      const msg = decodeInvalidation(raw);
      if (msg) for (const h of msg.hashes) this.cache.delete(h);
    });
    const down = () => {
      if (this.subscribed) this.log.warn({ channel }, 'session invalidation channel lost: cache bypassed until it is back');
      this.subscribed = false;
      // messages may be lost while down: nothing cached before may be trusted afterwards
      this.cache.clear();
    };
    sub.on('close', down);
    sub.on('end', down);
    sub.on('error', () => undefined);
    sub.on('ready', () => {
      void this.subscribe(sub, channel);
    });
    this.heartbeat = setInterval(() => this.ping(sub, channel), this.heartbeatIntervalMs);
    this.heartbeat.unref();
    if (sub.status === 'wait') sub.connect().catch(() => undefined);
    else if (sub.status === 'ready') await this.subscribe(sub, channel);
  }

  /** One ping at a time on the subscribed connection; its answer proves messages still flow. */
  private ping(sub: RedisClient, channel: string): void {
    if (!this.subscribed) return;
    if (this.pingSentAt !== null) {
      if (!this.channelSilent && performance.now() - this.pingSentAt >= this.heartbeatTimeoutMs) {
        this.channelSilent = true;
        this.log.warn({ channel }, 'session invalidation channel not answering: cache bypassed until it does');
      }
      return;
    }
    const sentAt = performance.now();
    this.pingSentAt = sentAt;
    sub.ping().then(
      () => {
        if (this.pingSentAt !== sentAt) return;
        this.pingSentAt = null;
        if (this.channelSilent) this.log.info({ channel }, 'session invalidation channel answering again: cache on');
        this.channelSilent = false;
      },
      // a dropped connection is handled by 'close'; subscribe() starts pinging afresh
      () => undefined,
    );
  }

  private async subscribe(sub: RedisClient, channel: string): Promise<void> {
    try {
      await sub.subscribe(channel);
      if (this.stopped) return;
      this.cache.clear();
      this.pingSentAt = null;
      this.channelSilent = false;
      this.subscribed = true;
      this.log.info({ channel }, 'session invalidation channel subscribed: cache on');
    } catch (err) {
      this.log.warn({ err }, 'session invalidation subscribe failed');
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.subscribed = false;
    this.cache.clear();
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    const sub = this.subscriber;
    this.subscriber = null;
    if (sub) {
      sub.removeAllListeners('close');
      sub.removeAllListeners('end');
      await sub.quit().catch(() => sub.disconnect());
    }
  }

  /** Drops sessions from this gateway's memory (what an invalidation message does). */
  invalidate(tokenHashes: Iterable<string>): void {
    for (const h of tokenHashes) this.cache.delete(h);
  }

  /**
   * Resolves a token taken from the cookie (null: there was none). Never throws: a Redis
   * failure is the outcome `store_error`, for the caller to fail closed.
   */
  async resolve(token: string | null): Promise<Lookup> {
    if (token === null) return { outcome: 'missing', source: 'none' };
    if (!isWellFormedToken(token)) return { outcome: 'invalid', source: 'none', reason: 'malformed token' };
    const tokenHash = hashToken(token);
    const now = this.now();
    if (!this.cacheActive) {
      let entry: Entry;
      try {
        entry = await this.load(tokenHash);
      } catch (err) {
        return { outcome: 'store_error', source: 'redis', error: err as Error };
      }
      return this.finish(tokenHash, entry, 'redis', now, false);
    }
    const cached = this.cache.get(tokenHash);
    if (cached) return this.finish(tokenHash, cached, 'cache', now, true);
    try {
      const entry = await this.cache.fetch(tokenHash);
      if (entry) return this.finish(tokenHash, entry, 'redis', now, true);
      // unreachable: fetchMethod always yields an entry
      return { outcome: 'store_error', source: 'redis', error: new Error('empty fetch') };
    } catch (err) {
      // aborted by an invalidation while in flight: ask Redis again, outside the cache
      if ((err as Error)?.message === 'deleted') {
        try {
          return this.finish(tokenHash, await this.load(tokenHash), 'redis', now, false);
        } catch (err2) {
          return { outcome: 'store_error', source: 'redis', error: err2 as Error };
        }
      }
      return { outcome: 'store_error', source: 'redis', error: err as Error };
    }
  }

  /** Reads one session from Redis into an entry (negative entries live shorter). */
  private async load(tokenHash: string, options?: { ttl?: number }): Promise<Entry> {
    let raw: string | null;
    try {
      raw = await this.store.readRaw(tokenHash);
      this.storeFailing = false;
    } catch (err) {
      this.storeFailing = true;
      throw err;
    }
    if (raw === null) {
      if (options) options.ttl = this.negativeTtlMs;
      return { record: null, negative: 'expired', identities: new Map() };
    }
    try {
      return { record: parseRecord(raw), negative: null, identities: new Map() };
    } catch (err) {
      if (options) options.ttl = this.negativeTtlMs;
      const reason = err instanceof InvalidRecordError ? err.message : 'unreadable record';
      return { record: null, negative: 'invalid', reason, identities: new Map() };
    }
  }

  private finish(tokenHash: string, entry: Entry, source: 'cache' | 'redis', now: number, cached: boolean): Lookup {
    const record = entry.record;
    if (!record) {
      const outcome = entry.negative ?? 'expired';
      return entry.reason ? { outcome, source, reason: entry.reason } : { outcome, source };
    }
    if (record.absoluteExpiresAt <= now) {
      this.cache.delete(tokenHash);
      this.store.redis.del(this.store.keys.session(tokenHash)).catch(() => undefined);
      return { outcome: 'expired', source };
    }
    this.maybeTouch(tokenHash, record, now);
    this.seen.set(tokenHash, true);
    return { outcome: 'valid', source, session: { record, tokenHash, identities: cached ? entry.identities : null } };
  }

  /** Pushes the idle expiry forward when this gateway has not done so for a refresh interval. */
  private maybeTouch(tokenHash: string, record: SessionRecord, now: number): void {
    const interval = record.idleTimeoutMs * this.refreshFraction;
    // a session is as fresh as its creation until this gateway touches it
    const last = this.touchedAt.get(tokenHash) ?? record.createdAt;
    if (now - last < interval) return;
    this.touchedAt.set(tokenHash, now);
    this.store.touch(tokenHash, record, now).then(
      () => {
        this.storeFailing = false;
      },
      (err: unknown) => {
        this.storeFailing = true;
        this.touchedAt.delete(tokenHash);
        this.log.warn({ err }, 'session refresh failed');
      },
    );
  }
}
