import {
  DEFAULT_CACHE_MAX,
  DEFAULT_CACHE_TTL_MS,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_HEARTBEAT_TIMEOUT_MS,
  DEFAULT_NEGATIVE_TTL_MS,
  DEFAULT_REFRESH_FRACTION,
} from '../defaults.js';
import { isLegacyToken, isWellFormedToken, sessionRef, type SessionRecord, type SessionRef, type SessionStore } from '@sessiongate/session';
import { ACTIVE_WINDOW_MS, ActiveSessions } from './active-sessions.js';
import { SessionCache, type InFlight } from './cache.js';
import { EntryParser, cacheDeadline, type Entry, type SessionSlot } from './entry.js';
import { InvalidationChannel } from './invalidation.js';
import { RefreshPacer, type StoreHealth } from './refresh.js';
import { RevocationWatch, type RevokedListener } from './revocations.js';

export type { SessionSlot } from './entry.js';

/** Tokens of the format before slot tags are reported at most this often. */
const LEGACY_WARNING_INTERVAL_MS = 60_000;

/**
 * What a lookup found. `missing` covers every well-formed token Redis holds nothing for:
 * unknown, forged, logged out, revoked and idle-expired alike (the key is gone either way).
 * `expired` is a record still stored past its absolute expiry, the one end the gateway can see.
 */
export type LookupOutcome = 'valid' | 'no_cookie' | 'malformed' | 'missing' | 'expired' | 'invalid' | 'store_error';
export type LookupSource = 'cache' | 'redis' | 'none';

/** A session that resolved. */
export interface ResolvedSession {
  readonly record: SessionRecord;
  /** The session id (record.sid): what the cache and revocation messages name it by. */
  readonly sid: string;
  /** Where the session is stored (its slot tag and sid). */
  readonly ref: SessionRef;
  /** For later stages to keep what they derive from this record, while the record is held. */
  readonly slot: SessionSlot;
}

export type Lookup =
  | { outcome: 'valid'; source: 'cache' | 'redis'; session: ResolvedSession }
  | { outcome: 'no_cookie' | 'malformed' | 'missing' | 'expired' | 'invalid'; source: LookupSource; reason?: string }
  | { outcome: 'store_error'; source: 'redis'; error: Error };

export interface SessionCacheOptions {
  /** Resolve from memory while the invalidation channel is subscribed. @default DEFAULT_SESSION_CACHE */
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
   * The cache is trusted only while a ping on the invalidation connection is answered: from
   * a stall to no more cache hits takes at most `intervalMs + timeoutMs` (the timeout rounded
   * up to whole intervals): 750 ms by default.
   */
  heartbeat?: {
    /** @default DEFAULT_HEARTBEAT_INTERVAL_MS */
    intervalMs?: number;
    /** @default DEFAULT_HEARTBEAT_TIMEOUT_MS */
    timeoutMs?: number;
  };
  /** How often open tunnels are re-checked while changes to sessions may go unreported (key tracking down). @default DEFAULT_REVOCATION_RECHECK_MS */
  revocationRecheckMs?: number;
  /** Where the resolver reports what happened to its subscription and refreshes. */
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
  now?: () => number;
}

const noopLog = { info() {}, warn() {} };

/**
 * Turns a cookie token into a session: through a bounded in-memory cache while revocations
 * can reach it (Redis reports every change to a session key: key tracking), straight from Redis otherwise. Concurrent
 * misses for one token share one Redis call. The sliding idle expiry is pushed forward at
 * most once per refresh interval per session, never by rewriting the record.
 */
export class SessionResolver {
  readonly store: SessionStore;
  private readonly cacheEnabled: boolean;
  private readonly cache: SessionCache;
  private readonly entries = new EntryParser();
  private readonly refresh: RefreshPacer;
  private readonly channel: InvalidationChannel;
  private readonly seen: ActiveSessions;
  private readonly revocations: RevocationWatch;
  /** The last command on the request path failed: Redis may not be answering anyone. */
  private readonly health: StoreHealth = { failing: false };
  private readonly log: NonNullable<SessionResolverOptions['log']>;
  private readonly now: () => number;
  /** Tokens of an earlier format seen since the last warning about them, and when that was. */
  private legacySeen = 0;
  private legacyWarnedAt: number | null = null;

  constructor(store: SessionStore, opts: SessionResolverOptions = {}) {
    this.store = store;
    const c = opts.cache ?? {};
    this.cacheEnabled = c.enabled ?? true;
    this.log = opts.log ?? noopLog;
    this.now = opts.now ?? Date.now;
    const max = c.max ?? DEFAULT_CACHE_MAX;
    this.refresh = new RefreshPacer(store, opts.refreshFraction ?? DEFAULT_REFRESH_FRACTION, max, this.health, this.log);
    this.cache = new SessionCache({
      max,
      ttlMs: c.ttlMs ?? DEFAULT_CACHE_TTL_MS,
      negativeTtlMs: c.negativeTtlMs ?? DEFAULT_NEGATIVE_TTL_MS,
      sweep: this.cacheEnabled,
      onLeave: (sid, entry) => this.refresh.remember(sid, entry.touchedAt),
    });
    this.seen = new ActiveSessions(ACTIVE_WINDOW_MS, Math.max(max, 100_000) * 10);
    this.channel = new InvalidationChannel(store, {
      heartbeatIntervalMs: opts.heartbeat?.intervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS,
      heartbeatTimeoutMs: opts.heartbeat?.timeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS,
      log: this.log,
      onInvalidate: (sids) => this.invalidate(sids),
      onForget: () => this.cache.forgetAll(),
      onSubscribed: () => void this.revocations.recheck(),
    });
    this.revocations = new RevocationWatch({
      recheckMs: opts.revocationRecheckMs,
      channelTrusted: () => this.channel.trusted,
      stillValid: (watched) =>
        Promise.all(
          watched.map(async ({ ref, roles }) => {
            const record = this.entries.parse(ref, await this.store.readRaw(ref)).record;
            if (record === null || record.absoluteExpiresAt <= this.now()) return false;
            return roles === null || sameRoles(roles, record.roles);
          }),
        ),
      log: this.log,
    });
  }

  /**
   * Calls `cb` once when the session `ref` is revoked or changed (an invalidation
   * message, or a re-check against Redis while such messages may be lost): for holders of
   * long-lived connections. Returns the unsubscribe.
   */
  onRevoked(ref: SessionRef, cb: RevokedListener): () => void {
    const known = this.cache.stale(ref.sid) ?? this.cache.recent(ref.sid);
    return this.revocations.add(ref, cb, known?.record?.roles ?? null);
  }

  /**
   * True while resolved sessions are served from memory: the invalidation channel is
   * subscribed and answering, and Redis answered the last command of the request path.
   * Otherwise every lookup asks Redis, so a Redis that is gone or silent fails closed.
   */
  get cacheActive(): boolean {
    return this.cacheEnabled && this.channel.trusted && !this.health.failing && this.store.redis.status === 'ready';
  }

  /** Distinct sessions resolved in the last 5 minutes (computed when asked: at scrape time). */
  get activeSessions(): number {
    return this.seen.count(this.now());
  }

  /** Most sessions held in memory. */
  get capacity(): number {
    return this.cache.max;
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
    if (this.cacheEnabled) await this.channel.start();
  }

  async stop(): Promise<void> {
    const closing = this.channel.stop();
    this.cache.forgetAll();
    this.revocations.stop();
    this.cache.stop();
    await closing;
  }

  /**
   * Drops sessions that changed in Redis from this gateway's memory; the open tunnels of
   * those that ended or lost roles are closed (a refresh of the expiry changes the key too).
   */
  invalidate(sids: Iterable<string>): void {
    const list = [...sids];
    for (const sid of list) this.cache.invalidate(sid);
    this.revocations.changed(list);
  }

  /**
   * Resolves a token taken from the cookie (null: there was none). Never throws: a Redis
   * failure is the outcome `store_error`, for the caller to fail closed.
   */
  async resolve(token: string | null): Promise<Lookup> {
    if (token === null) return { outcome: 'no_cookie', source: 'none' };
    if (!isWellFormedToken(token)) {
      if (isLegacyToken(token)) this.noteLegacyToken();
      return { outcome: 'malformed', source: 'none', reason: 'malformed token' };
    }
    const ref = sessionRef(token);
    const now = this.now();
    if (!this.cacheActive) return this.resolveUncached(ref, now);
    const cached = this.cache.get(ref.sid);
    if (cached) {
      // never past the deadlines Redis itself holds the session to, whatever the cache TTL
      if (!cached.record || now < cacheDeadline(cached)) return this.lookupOf(ref, cached, 'cache', now);
      this.cache.invalidate(ref.sid);
    }
    const read = this.cache.pending(ref.sid) ?? this.startRead(ref);
    let entry: Entry;
    try {
      entry = await read.entry;
    } catch (err) {
      return { outcome: 'store_error', source: 'redis', error: err as Error };
    }
    // invalidated while in flight: the value may predate the change, so ask Redis again
    if (read.cancelled) return this.resolveUncached(ref, now);
    return this.lookupOf(ref, entry, 'redis', now);
  }

  /**
   * A token of the format before slot tags: its session (if still in Redis) is never looked
   * up, so its holder logs in again. Said at most once a minute, with how many were seen.
   */
  private noteLegacyToken(): void {
    this.legacySeen++;
    const now = performance.now();
    if (this.legacyWarnedAt !== null && now - this.legacyWarnedAt < LEGACY_WARNING_INTERVAL_MS) return;
    this.legacyWarnedAt = now;
    this.log.warn({ tokens: this.legacySeen }, 'session cookies of an earlier format refused: their holders must log in again');
    this.legacySeen = 0;
  }

  /** One read of a session into the cache, shared by every request that misses meanwhile. */
  private startRead(ref: SessionRef): InFlight {
    // an expired entry of this session, or what was remembered of it, knows when it was last refreshed
    const touchedAt = this.refresh.lastRefreshOf(ref.sid, this.cache.stale(ref.sid));
    return this.cache.read(ref.sid, () => this.load(ref, touchedAt));
  }

  /** One read of Redis, whatever the cache holds: the path while the cache is bypassed. */
  private async resolveUncached(ref: SessionRef, now: number): Promise<Lookup> {
    const prev = this.cache.recent(ref.sid);
    // a refresh that is due rides on the read (GETEX PX): still one command
    const previousTouch = prev?.touchedAt;
    const refreshTtl = prev?.record ? this.refresh.claim(prev, now) : null;
    let raw: string | null;
    try {
      raw = await this.read(ref, refreshTtl);
    } catch (err) {
      if (prev && previousTouch !== undefined) prev.touchedAt = previousTouch;
      return { outcome: 'store_error', source: 'redis', error: err as Error };
    }
    let entry: Entry;
    if (prev && raw !== null && prev.raw === raw) {
      entry = prev;
    } else {
      entry = this.entries.parse(ref, raw, prev?.record ? prev.touchedAt : undefined);
      if (entry.record) {
        entry.raw = raw!;
        this.cache.keepRecent(ref.sid, entry);
      } else {
        this.cache.dropRecent(ref.sid);
      }
    }
    return this.lookupOf(ref, entry, 'redis', now);
  }

  /** Reads one session from Redis into an entry. */
  private async load(ref: SessionRef, touchedAt: number | undefined): Promise<Entry> {
    return this.entries.parse(ref, await this.read(ref, null), touchedAt);
  }

  /** One command of the request path (GETEX when a refresh rides along); notes whether Redis answered. */
  private async read(ref: SessionRef, refreshTtl: number | null): Promise<string | null> {
    try {
      const raw = refreshTtl === null ? await this.store.readRaw(ref) : await this.store.readRawAndRefresh(ref, refreshTtl);
      this.health.failing = false;
      return raw;
    } catch (err) {
      this.health.failing = true;
      throw err;
    }
  }

  /**
   * The answer for an entry just found. On the way, a session past its absolute expiry is
   * removed, and a valid one has its idle expiry pushed forward when due and is counted as seen.
   */
  private lookupOf(ref: SessionRef, entry: Entry, source: 'cache' | 'redis', now: number): Lookup {
    const record = entry.record;
    if (!record) {
      const outcome = entry.negative ?? 'missing';
      return entry.reason ? { outcome, source, reason: entry.reason } : { outcome, source };
    }
    if (record.absoluteExpiresAt <= now) {
      this.removeExpired(ref);
      return { outcome: 'expired', source };
    }
    this.refresh.touchIfDue(ref, entry, now);
    this.seen.noteEntry(entry, ref.sid, now);
    return { outcome: 'valid', source, session: { record, sid: ref.sid, ref, slot: entry } };
  }

  /** Forgets a session past its absolute expiry and deletes it from Redis (in the background). */
  private removeExpired(ref: SessionRef): void {
    this.cache.delete(ref.sid);
    this.store.redis.del(this.store.keys.session(ref)).catch(() => undefined);
  }
}

function sameRoles(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((r, i) => r === b[i]);
}
