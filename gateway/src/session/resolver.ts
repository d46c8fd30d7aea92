import { LRUCache } from 'lru-cache';
import {
  InvalidRecordError,
  isLegacyToken,
  isWellFormedToken,
  parseRecord,
  remainingLifetimeMs,
  sessionRef,
  type SessionRecord,
  type SessionRef,
  subscriberFor,
  decodeInvalidation,
  type RedisClient,
  type SessionStore,
} from '@sessiongate/session';
import { RevocationWatch, type RevokedListener } from './revocations.js';

/** Most sessions one gateway keeps resolved in memory. @default 100_000 */
export const DEFAULT_CACHE_MAX = 100_000;
/** How long a resolved session is reused without asking Redis (revocations arrive by pub/sub sooner). @default 5000 */
export const DEFAULT_CACHE_TTL_MS = 5_000;
/** How long an unknown or malformed token is remembered as such. @default 1000 */
export const DEFAULT_NEGATIVE_TTL_MS = 1_000;
/** The idle expiry is pushed forward at most once per this fraction of the idle timeout. @default 0.1 */
export const DEFAULT_REFRESH_FRACTION = 0.1;
/** Most sessions that keep their signed X-Session headers for reuse. @default 10_000 */
export const DEFAULT_SIGNED_HEADERS_MAX = 10_000;
/** How often the invalidation connection is pinged to prove revocations can still arrive. @default 250 */
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 250;
/** A ping on the invalidation connection unanswered this long bypasses the cache until it answers. @default 500 */
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 500;

/** The window of `activeSessions`. */
const ACTIVE_WINDOW_MS = 5 * 60_000;
/** Tokens of the format before slot tags are reported at most this often. */
const LEGACY_WARNING_INTERVAL_MS = 60_000;

/**
 * What a lookup found. `missing` covers every well-formed token Redis holds nothing for:
 * unknown, forged, logged out, revoked and idle-expired alike (the key is gone either way).
 * `expired` is a record still stored past its absolute expiry, the one end the gateway can see.
 */
export type LookupOutcome = 'valid' | 'no_cookie' | 'malformed' | 'missing' | 'expired' | 'invalid' | 'store_error';
export type LookupSource = 'cache' | 'redis' | 'none';

/** A signed X-Session kept for reuse, per route. */
export interface CachedIdentity {
  readonly token: string;
  /** Reuse it until then (half its lifetime). */
  readonly reuseUntil: number;
}

/** The signed X-Session headers of one session, by route, kept for reuse. */
export interface SignedHeaders {
  get(route: string): CachedIdentity | undefined;
  set(route: string, identity: CachedIdentity): void;
}

/** A session that resolved. `identities` lets the signer reuse headers while the entry lives. */
export interface ResolvedSession {
  readonly record: SessionRecord;
  /** The session id (record.sid): what the cache and revocation messages name it by. */
  readonly sid: string;
  /** Where the session is stored (its slot tag and sid). */
  readonly ref: SessionRef;
  readonly identities: SignedHeaders | null;
}

export type Lookup =
  | { outcome: 'valid'; source: 'cache' | 'redis'; session: ResolvedSession }
  | { outcome: 'no_cookie' | 'malformed' | 'missing' | 'expired' | 'invalid'; source: LookupSource; reason?: string }
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
  /** Most sessions that keep signed X-Session headers for reuse. @default DEFAULT_SIGNED_HEADERS_MAX */
  signedHeadersMax?: number;
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
  /** How often open tunnels are re-checked while revocations cannot arrive by pub/sub. @default DEFAULT_REVOCATION_RECHECK_MS */
  revocationRecheckMs?: number;
  /** Where the resolver reports what happened to its subscription and refreshes. */
  log?: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void };
  now?: () => number;
}

/**
 * What the resolver holds of one session (or of a token that has none), kept small: a
 * gateway may hold a hundred thousand. Every field is set in the constructor, so all live
 * in the object itself.
 */
class Entry implements SignedHeaders {
  /**
   * When this gateway last pushed the session's idle expiry forward (epoch ms), or its
   * creation. Carried over when the session is read again after its entry expired or was
   * evicted; after an invalidation it starts from the creation time, which costs at most
   * one early refresh.
   */
  touchedAt: number;
  /** The second this entry last counted its session as seen (for `activeSessions`). */
  seenAtSecond = 0;
  /** The stored value the record was parsed from (kept for entries of `recent` only). */
  raw: string | null = null;
  private signedRoute: string | null = null;
  private signed: CachedIdentity | undefined = undefined;
  private moreSigned: Map<string, CachedIdentity> | null = null;

  constructor(
    readonly record: SessionRecord | null,
    /** Why there is no record: 'missing' (nothing stored for the token) or 'invalid' (corrupt record). */
    readonly negative: 'missing' | 'invalid' | null,
    private readonly ring: SignedRing | null,
    readonly reason?: string,
  ) {
    this.touchedAt = record ? record.createdAt : 0;
  }

  get(route: string): CachedIdentity | undefined {
    return this.signedRoute === route ? this.signed : this.moreSigned?.get(route);
  }

  set(route: string, identity: CachedIdentity): void {
    if (this.signedRoute === null) this.ring?.add(this);
    if (this.signedRoute === null || this.signedRoute === route) {
      this.signedRoute = route;
      this.signed = identity;
    } else {
      (this.moreSigned ??= new Map()).set(route, identity);
    }
  }

  /** Lets go of the signed headers (the ring needs the room). */
  dropSigned(): void {
    this.signedRoute = null;
    this.signed = undefined;
    this.moreSigned = null;
  }
}

/**
 * The sessions holding signed headers, oldest first, at most `size`: a signed X-Session is
 * a few hundred bytes, so only that many sessions keep theirs. A busy session signs again at
 * most once per reuse period; one seen once in a while signs per request, as it would anyway.
 */
class SignedRing {
  private readonly slots: (Entry | undefined)[];
  private next = 0;

  constructor(readonly size: number) {
    this.slots = new Array<Entry | undefined>(size);
  }

  add(entry: Entry): void {
    const old = this.slots[this.next];
    if (old !== undefined && old !== entry) old.dropSigned();
    this.slots[this.next] = entry;
    this.next = (this.next + 1) % this.size;
  }
}

/** Sets of roles are few: sessions with the same roles share one frozen array. */
class RoleSets {
  private readonly sets = new Map<string, readonly string[]>();

  constructor(private readonly limit: number) {}

  intern(roles: readonly string[]): readonly string[] {
    const key = roles.join('\n');
    const known = this.sets.get(key);
    if (known) return known;
    const frozen = Object.freeze([...roles]);
    if (this.sets.size < this.limit) this.sets.set(key, frozen);
    return frozen;
  }
}

const noopLog = { info() {}, warn() {} };

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** The first `chars` base64url characters of a sid as a number (8 chars: 48 bits, exact). */
function sidBits(sid: string, chars: number): number {
  let n = 0;
  for (let i = 0; i < chars; i++) n = n * 64 + BASE64URL.indexOf(sid[i]!);
  return n;
}

/** 48 bits of a sid (a hash of the token), exactly representable as a number. */
function touchKey(sid: string): number {
  return sidBits(sid, 8);
}

interface InFlight {
  entry: Promise<Entry>;
  cancelled: boolean;
}

/**
 * Distinct sessions seen within a sliding window, for the `active_sessions` gauge, in a few
 * dozen bytes per session: keyed by 30 bits of the sid (small integers, no strings),
 * valued by the second last seen. Among 100 000 sessions about five share a key, so the count
 * may be short by that much. Stale keys are dropped when counted and once a minute; past
 * `limit` keys the map starts over rather than grow.
 */
class ActiveSessions {
  private readonly lastSeen = new Map<number, number>();
  private lastSweep = 0;

  constructor(
    private readonly windowMs: number,
    private readonly limit: number,
  ) {}

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
  private readonly cache: LRUCache<string, Entry>;
  /**
   * Reads of Redis under way, by sid: concurrent misses for one session wait for the
   * same read. An invalidation marks the read cancelled, so what it returns is not cached.
   */
  private readonly inflight = new Map<string, InFlight>();
  /**
   * When sessions that left the cache (expired and swept, or evicted) were last refreshed,
   * in whole seconds, oldest first and at most `max`, keyed by 48 bits of the sid:
   * some fifty bytes each instead of the whole entry, so their next read still knows whether
   * a refresh is due. (That any two of 100 000 sessions share a key is about a one in a
   * million chance; if they did, one refresh could come an interval late, well within the
   * idle timeout of ten intervals.)
   */
  private readonly lastTouch = new Map<number, number>();
  private readonly cacheMax: number;
  private sweeper: NodeJS.Timeout | null = null;
  private readonly seen: ActiveSessions;
  private readonly signedRing: SignedRing;
  private readonly roleSets = new RoleSets(10_000);
  /**
   * Sessions last read while the cache was bypassed. Redis is still asked on every request;
   * a value identical to the last one is not parsed again, its signed X-Session headers are
   * reused, and the due expiry refresh rides on the read itself.
   */
  private recentCache: LRUCache<string, Entry> | null = null;
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
  private readonly revocations: RevocationWatch;
  /** Tokens of an earlier format seen since the last warning about them, and when that was. */
  private legacySeen = 0;
  private legacyWarnedAt: number | null = null;

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
    this.cache = new LRUCache<string, Entry>({
      max,
      ttl: this.cacheTtlMs,
      ttlAutopurge: false,
      // an expired entry stays until read again or swept, so its reload can carry over its
      // refresh time
      noDeleteOnStaleGet: true,
      dispose: (entry, sid, reason) => {
        if ((reason === 'expire' || reason === 'evict') && entry.record) this.rememberTouch(sid, entry.touchedAt);
      },
    });
    this.cacheMax = max;
    if (this.cacheEnabled) {
      // expired entries are dropped twice per TTL: memory follows the sessions in use, not the max
      this.sweeper = setInterval(() => this.cache.purgeStale(), Math.max(1000, this.cacheTtlMs / 2));
      this.sweeper.unref();
    }
    this.signedRing = new SignedRing(Math.max(1, Math.min(max, opts.signedHeadersMax ?? DEFAULT_SIGNED_HEADERS_MAX)));
    this.seen = new ActiveSessions(ACTIVE_WINDOW_MS, Math.max(max, 100_000) * 10);
    this.revocations = new RevocationWatch({
      recheckMs: opts.revocationRecheckMs,
      channelTrusted: () => this.subscribed && !this.channelSilent && !this.stopped,
      stillValid: (refs) =>
        Promise.all(
          refs.map(async (ref) => {
            const record = this.entryOf(ref, await this.store.readRaw(ref)).record;
            return record !== null && record.absoluteExpiresAt > this.now();
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
    return this.revocations.add(ref, cb);
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
    return this.seen.count(this.now());
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
      if (msg) this.invalidate(msg.sids);
    });
    const down = () => {
      if (this.subscribed) this.log.warn({ channel }, 'session invalidation channel lost: cache bypassed until it is back');
      this.subscribed = false;
      // messages may be lost while down: nothing cached before may be trusted afterwards
      this.forgetAll();
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
      this.forgetAll();
      this.pingSentAt = null;
      this.channelSilent = false;
      this.subscribed = true;
      this.log.info({ channel }, 'session invalidation channel subscribed: cache on');
      // revocations published while the channel was down were lost: ask Redis instead
      void this.revocations.recheck();
    } catch (err) {
      this.log.warn({ err }, 'session invalidation subscribe failed');
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.subscribed = false;
    this.forgetAll();
    this.revocations.stop();
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
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
  invalidate(sids: Iterable<string>): void {
    const list = [...sids];
    for (const h of list) {
      this.cache.delete(h);
      this.recentCache?.delete(h);
      const read = this.inflight.get(h);
      if (read) {
        read.cancelled = true;
        this.inflight.delete(h);
      }
    }
    this.revocations.revoke(list);
  }

  private rememberTouch(sid: string, touchedAt: number): void {
    const key = touchKey(sid);
    this.lastTouch.delete(key);
    this.lastTouch.set(key, Math.floor(touchedAt / 1000));
    if (this.lastTouch.size > this.cacheMax) {
      const oldest = this.lastTouch.keys().next();
      if (!oldest.done) this.lastTouch.delete(oldest.value);
    }
  }

  /** Made on first use: a gateway whose cache is on may never need it. */
  private get recent(): LRUCache<string, Entry> {
    return (this.recentCache ??= new LRUCache<string, Entry>({ max: this.cacheMax }));
  }

  /** Trusts nothing read before now: every cached session and every read under way. */
  private forgetAll(): void {
    this.cache.clear();
    for (const read of this.inflight.values()) read.cancelled = true;
    this.inflight.clear();
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
    if (cached) return this.finish(ref, cached, 'cache', now);
    const read = this.inflight.get(ref.sid) ?? this.startRead(ref);
    let entry: Entry;
    try {
      entry = await read.entry;
    } catch (err) {
      return { outcome: 'store_error', source: 'redis', error: err as Error };
    }
    // invalidated while in flight: the value may predate the change, so ask Redis again
    if (read.cancelled) return this.resolveUncached(ref, now);
    return this.finish(ref, entry, 'redis', now);
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
    const sid = ref.sid;
    // an expired entry of this session, or its note in lastTouch, knows when it was last refreshed
    const stale = this.cache.get(sid, { allowStale: true });
    let touchedAt = stale?.record ? stale.touchedAt : undefined;
    if (touchedAt === undefined) {
      const key = touchKey(sid);
      const second = this.lastTouch.get(key);
      if (second !== undefined) {
        this.lastTouch.delete(key);
        touchedAt = second * 1000;
      }
    }
    const read = { cancelled: false } as InFlight;
    read.entry = this.load(ref, touchedAt).then(
      (entry) => {
        if (this.inflight.get(sid) === read) this.inflight.delete(sid);
        if (!read.cancelled) this.cache.set(sid, entry, entry.record ? undefined : { ttl: this.negativeTtlMs });
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

  /** One read of Redis, whatever the cache holds: the path while the cache is bypassed. */
  private async resolveUncached(ref: SessionRef, now: number): Promise<Lookup> {
    const prev = this.recent.get(ref.sid);
    // a refresh that is due rides on the read (GETEX PX): still one command
    const previousTouch = prev?.touchedAt;
    const refreshTtl = prev?.record ? this.claimRefresh(prev, now) : null;
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
      entry = this.entryOf(ref, raw, prev?.record ? prev.touchedAt : undefined);
      if (entry.record) {
        entry.raw = raw!;
        this.recent.set(ref.sid, entry);
      } else {
        this.recent.delete(ref.sid);
      }
    }
    return this.finish(ref, entry, 'redis', now);
  }

  /** What the gateway keeps of a record: the user agent (for "my sessions" only) stays in Redis. */
  private gatewayView(r: SessionRecord): SessionRecord {
    return {
      v: r.v,
      sid: r.sid,
      sub: r.sub,
      roles: this.roleSets.intern(r.roles),
      createdAt: r.createdAt,
      absoluteExpiresAt: r.absoluteExpiresAt,
      idleTimeoutMs: r.idleTimeoutMs,
      claims: r.claims,
    };
  }

  /**
   * Parses a stored value into an entry; never throws. `touchedAt` is when this session was
   * last refreshed, if known: it still holds (the expiry fields of a session never change).
   */
  private entryOf(ref: SessionRef, raw: string | null, touchedAt?: number): Entry {
    if (raw === null) return new Entry(null, 'missing', null);
    try {
      const record = parseRecord(raw);
      // revocations name a session by its sid: a record under another sid's key could outlive them
      if (record.sid !== ref.sid) return new Entry(null, 'invalid', null, 'record stored under another session id');
      const entry = new Entry(this.gatewayView(record), null, this.signedRing);
      if (touchedAt !== undefined) entry.touchedAt = Math.max(touchedAt, entry.touchedAt);
      return entry;
    } catch (err) {
      return new Entry(null, 'invalid', null, err instanceof InvalidRecordError ? err.message : 'unreadable record');
    }
  }

  /** Reads one session from Redis into an entry. */
  private async load(ref: SessionRef, touchedAt: number | undefined): Promise<Entry> {
    return this.entryOf(ref, await this.read(ref, null), touchedAt);
  }

  /** One command of the request path (GETEX when a refresh rides along); notes whether Redis answered. */
  private async read(ref: SessionRef, refreshTtl: number | null): Promise<string | null> {
    try {
      const raw = refreshTtl === null ? await this.store.readRaw(ref) : await this.store.readRawAndRefresh(ref, refreshTtl);
      this.storeFailing = false;
      return raw;
    } catch (err) {
      this.storeFailing = true;
      throw err;
    }
  }

  private finish(ref: SessionRef, entry: Entry, source: 'cache' | 'redis', now: number): Lookup {
    const record = entry.record;
    if (!record) {
      const outcome = entry.negative ?? 'missing';
      return entry.reason ? { outcome, source, reason: entry.reason } : { outcome, source };
    }
    if (record.absoluteExpiresAt <= now) {
      this.cache.delete(ref.sid);
      this.recentCache?.delete(ref.sid);
      this.store.redis.del(this.store.keys.session(ref)).catch(() => undefined);
      return { outcome: 'expired', source };
    }
    this.maybeTouch(ref, entry, now);
    // counted at most once a second per entry: `seen` is only read at scrape time
    const second = Math.floor(now / 1000);
    if (entry.seenAtSecond !== second) {
      entry.seenAtSecond = second;
      this.seen.note(ref.sid, now);
    }
    return { outcome: 'valid', source, session: { record, sid: ref.sid, ref, identities: entry } };
  }

  /**
   * When this gateway has not pushed the idle expiry forward for a refresh interval, claims
   * the refresh and answers the TTL to set (never past the absolute expiry); otherwise null.
   */
  private claimRefresh(entry: Entry, now: number): number | null {
    const record = entry.record;
    if (!record) return null;
    // a session is as fresh as its creation until this gateway touches it
    if (now - entry.touchedAt < record.idleTimeoutMs * this.refreshFraction) return null;
    const ttl = remainingLifetimeMs(record, now);
    // past the absolute expiry: finish() refuses and removes the session
    if (ttl <= 0) return null;
    entry.touchedAt = now;
    return Math.ceil(ttl);
  }

  /** Pushes the idle expiry forward (PEXPIRE, in the background) when a refresh is due. */
  private maybeTouch(ref: SessionRef, entry: Entry, now: number): void {
    const previousTouch = entry.touchedAt;
    if (this.claimRefresh(entry, now) === null) return;
    const record = entry.record!;
    this.store.touch(ref, record, now).then(
      () => {
        this.storeFailing = false;
      },
      (err: unknown) => {
        this.storeFailing = true;
        // let the next request try again
        if (entry.touchedAt === now) entry.touchedAt = previousTouch;
        this.log.warn({ err }, 'session refresh failed');
      },
    );
  }
}
