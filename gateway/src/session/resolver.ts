import {
  DEFAULT_CACHE_MAX,
  DEFAULT_CACHE_TTL_MS,
  DEFAULT_HEARTBEAT_INTERVAL_MS,
  DEFAULT_HEARTBEAT_TIMEOUT_MS,
  DEFAULT_NEGATIVE_TTL_MS,
  DEFAULT_REFRESH_FRACTION,
} from '../defaults.js';
import type { LRUCache } from 'lru-cache';
import { ApiKeyStore, apiKeyMatches, apiKeyRef, isLegacyToken, isWellFormedToken, sessionRef, type SessionRecord, type SessionRef, type SessionStore } from '@sessiongate/session';
import { ActiveSessions } from './active-sessions.js';
import { SessionCache, type InFlight } from './cache.js';
import { EntryParser, cacheDeadline, type Entry } from './entry.js';
import { InvalidationChannel } from './invalidation.js';
import { growingLru } from './lru.js';
import { RefreshPacer, type StoreHealth } from './refresh.js';
import { RevocationWatch, type RevokedListener } from './revocations.js';
import { ownSid } from './sid-bits.js';

export type { SessionSlot } from './entry.js';
export type { CredentialRef, CredentialVia, Lookup, LookupOutcome, LookupSource, ResolvedSession } from './lookup.js';
import type { CredentialRef, Lookup } from './lookup.js';

/** A key's last use is written to Redis at most this often (per key, per gateway). */
export const API_KEY_USE_INTERVAL_MS = 60_000;

/** Tokens of the format before slot tags are reported at most this often. */
const LEGACY_WARNING_INTERVAL_MS = 60_000;

export interface SessionCacheOptions {
  /** Resolve from memory while Redis key tracking is on. @default DEFAULT_SESSION_CACHE */
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


/** How one kind of stored credential is read and parsed. */
interface Kind {
  readonly via: 'session' | 'api_key';
  /** One command of the request path; a refresh rides along when `refreshTtl` is set. */
  read(ref: SessionRef, refreshTtl: number | null): Promise<string | null>;
  parse(ref: SessionRef, raw: string | null, touchedAt?: number): Entry;
  /** Past its absolute expiry: delete it (a key's record expires in Redis by itself). */
  removeExpired(ref: SessionRef): void;
}

/**
 * Turns a cookie token into a session: through a bounded in-memory cache while revocations
 * can reach it (Redis reports every change to a session key: key tracking), straight from Redis otherwise. Concurrent
 * misses for one token share one Redis call. The sliding idle expiry is pushed forward at
 * most once per refresh interval per session, never by rewriting the record.
 */
export class SessionResolver {
  readonly store: SessionStore;
  readonly apiKeys: ApiKeyStore;
  private readonly sessionKind: Kind;
  private readonly apiKeyKind: Kind;
  /** Keys whose last use was written in the last minute. */
  private readonly keyUses: LRUCache<string, true>;
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
    this.apiKeys = new ApiKeyStore(store);
    this.sessionKind = {
      via: 'session',
      read: (ref, ttl) => (ttl === null ? this.store.readRaw(ref) : this.store.readRawAndRefresh(ref, ttl)),
      parse: (ref, raw, touchedAt) => this.entries.parse(ref, raw, touchedAt),
      removeExpired: (ref) => void this.store.redis.del(this.store.keys.session(ref)).catch(() => undefined),
    };
    this.apiKeyKind = {
      via: 'api_key',
      read: (ref) => this.apiKeys.readRaw(ref),
      parse: (ref, raw) => this.entries.parseApiKey(ref, raw),
      removeExpired: () => undefined,
    };
    const c = opts.cache ?? {};
    this.cacheEnabled = c.enabled ?? true;
    this.log = opts.log ?? noopLog;
    this.now = opts.now ?? Date.now;
    const max = c.max ?? DEFAULT_CACHE_MAX;
    this.keyUses = growingLru<string, true>(Math.min(max, 100_000), { ttl: API_KEY_USE_INTERVAL_MS });
    this.refresh = new RefreshPacer(store, opts.refreshFraction ?? DEFAULT_REFRESH_FRACTION, max, this.health, this.log);
    this.cache = new SessionCache({
      max,
      ttlMs: c.ttlMs ?? DEFAULT_CACHE_TTL_MS,
      negativeTtlMs: c.negativeTtlMs ?? DEFAULT_NEGATIVE_TTL_MS,
      sweep: this.cacheEnabled,
      onLeave: (sid, entry) => this.refresh.remember(sid, entry.touchedAt),
    });
    this.seen = new ActiveSessions();
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
          watched.map(async ({ ref, roles }: { ref: CredentialRef; roles: readonly string[] | null }) => {
            // an IdP's token stands until it expires: nothing here can revoke it
            if (ref.via === 'jwt') return true;
            const kind = this.kindOf(ref);
            const record = kind.parse(ref, await kind.read(ref, null)).record;
            if (record === null || record.absoluteExpiresAt <= this.now()) return false;
            return roles === null || sameRoles(roles, record.roles);
          }),
        ),
      log: this.log,
    });
  }

  /**
   * Calls `cb` once when the session or API key `ref` ends or its roles change (Redis
   * reports a change to its key and a read confirms it, or a re-check while such reports
   * may be lost): for holders of long-lived connections. Returns the unsubscribe.
   */
  onRevoked(ref: CredentialRef, cb: RevokedListener): () => void {
    const known = this.cache.stale(ref.sid) ?? this.cache.recent(ref.sid);
    return this.revocations.add(ref, cb, known?.record?.roles ?? null);
  }

  /**
   * True while resolved sessions are served from memory: every node's key tracking
   * connection is subscribed and answering, and Redis answered the last command of the request path.
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
   * Turns key tracking on, one connection per node. Until every node tracks (and whenever
   * one stops), every lookup goes to Redis.
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
   * Drops sessions and API keys that changed in Redis from this gateway's memory; the open
   * tunnels of those that ended or changed roles are closed (a refresh of the expiry changes the key too).
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
    return this.lookup(this.sessionKind, sessionRef(token));
  }

  /**
   * Resolves an API key (from `Authorization: Bearer`) through the same cache as cookies:
   * the entry is the key's record, and the key itself is checked against its hash on
   * every request. Never throws.
   */
  async resolveApiKey(key: string): Promise<Lookup> {
    const at = apiKeyRef(key);
    if (!at) return { outcome: 'malformed', source: 'none', reason: 'malformed API key' };
    // field by field: the same object made with a spread ({ ...at, via }) outlived a young
    // generation collection on every request (about 95 bytes a lookup moved to the old generation)
    const lookup = await this.lookup(this.apiKeyKind, { tag: at.tag, sid: at.sid, via: 'api_key' });
    if (lookup.outcome !== 'valid') return lookup;
    const digest = (lookup.session.slot as Entry).apiKeyDigest;
    // a known id with the wrong secret is no key at all
    if (digest === null || !apiKeyMatches(digest, key)) return { outcome: 'missing', source: lookup.source, reason: 'wrong secret' };
    this.noteKeyUse(lookup.session.record);
    return lookup;
  }

  /** Writes when a key was last used, at most once a minute per key (in the background). */
  private noteKeyUse(record: SessionRecord): void {
    if (this.keyUses.has(record.sid)) return;
    this.keyUses.set(record.sid, true);
    this.apiKeys.noteUse({ sub: record.sub, id: record.sid }, this.now()).catch((err: unknown) => {
      this.keyUses.delete(record.sid);
      this.log.warn({ err }, 'could not note an API key use');
    });
  }

  private kindOf(ref: CredentialRef): Kind {
    return ref.via === 'api_key' ? this.apiKeyKind : this.sessionKind;
  }

  private async lookup(kind: Kind, ref: CredentialRef): Promise<Lookup> {
    const now = this.now();
    if (!this.cacheActive) return this.resolveUncached(kind, ref, now);
    const cached = this.cache.get(ref.sid);
    if (cached) {
      // never past the deadlines Redis itself holds the credential to, whatever the cache TTL
      if (!cached.record || now < cacheDeadline(cached)) return this.lookupOf(kind, ref, cached, 'cache', now);
      this.cache.invalidate(ref.sid);
    }
    const read = this.cache.pending(ref.sid) ?? this.startRead(kind, ref);
    let entry: Entry;
    try {
      entry = await read.entry;
    } catch (err) {
      return { outcome: 'store_error', source: 'redis', error: err as Error };
    }
    // invalidated while in flight: the value may predate the change, so ask Redis again
    if (read.cancelled) return this.resolveUncached(kind, ref, now);
    return this.lookupOf(kind, ref, entry, 'redis', now);
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
  private startRead(kind: Kind, ref: CredentialRef): InFlight {
    // the cache's key and the record's sid: its own string, not a slice of the request's hash
    const own = { ...ref, sid: ownSid(ref.sid) };
    // an expired entry of this session, or what was remembered of it, knows when it was last refreshed
    const touchedAt = this.refresh.lastRefreshOf(own.sid, this.cache.stale(own.sid));
    return this.cache.read(own.sid, () => this.load(kind, own, touchedAt));
  }

  /** One read of Redis, whatever the cache holds: the path while the cache is bypassed. */
  private async resolveUncached(kind: Kind, ref: CredentialRef, now: number): Promise<Lookup> {
    const prev = this.cache.recent(ref.sid);
    // a refresh that is due rides on the read (GETEX PX): still one command
    const previousTouch = prev?.touchedAt;
    const refreshTtl = prev?.record ? this.refresh.claim(prev, now) : null;
    let raw: string | null;
    try {
      raw = await this.read(kind, ref, refreshTtl);
    } catch (err) {
      if (prev && previousTouch !== undefined) prev.touchedAt = previousTouch;
      return { outcome: 'store_error', source: 'redis', error: err as Error };
    }
    let entry: Entry;
    if (prev && raw !== null && prev.raw === raw) {
      entry = prev;
    } else {
      const own = { ...ref, sid: ownSid(ref.sid) };
      entry = kind.parse(own, raw, prev?.record ? prev.touchedAt : undefined);
      if (entry.record) {
        entry.raw = raw!;
        this.cache.keepRecent(own.sid, entry);
      } else {
        this.cache.dropRecent(ref.sid);
      }
    }
    return this.lookupOf(kind, ref, entry, 'redis', now);
  }

  /** Reads one session from Redis into an entry. */
  private async load(kind: Kind, ref: CredentialRef, touchedAt: number | undefined): Promise<Entry> {
    return kind.parse(ref, await this.read(kind, ref, null), touchedAt);
  }

  /**
   * One command of the request path (GETEX when a refresh rides along); notes whether Redis
   * answered. No async frame of its own: the uncached path awaits it on every request.
   */
  private read(kind: Kind, ref: SessionRef, refreshTtl: number | null): Promise<string | null> {
    let reading: Promise<string | null>;
    try {
      reading = kind.read(ref, refreshTtl);
    } catch (err) {
      this.health.failing = true;
      return Promise.reject(err);
    }
    return reading.then(this.answered, this.unanswered);
  }

  private readonly answered = (raw: string | null): string | null => {
    this.health.failing = false;
    return raw;
  };

  private readonly unanswered = (err: unknown): never => {
    this.health.failing = true;
    throw err;
  };

  /**
   * The answer for an entry just found. On the way, a session past its absolute expiry is
   * removed, and a valid one has its idle expiry pushed forward when due and is counted as seen.
   */
  private lookupOf(kind: Kind, ref: CredentialRef, entry: Entry, source: 'cache' | 'redis', now: number): Lookup {
    const record = entry.record;
    if (!record) {
      const outcome = entry.negative ?? 'missing';
      return entry.reason ? { outcome, source, reason: entry.reason } : { outcome, source };
    }
    if (record.absoluteExpiresAt <= now) {
      // forgotten here, deleted from Redis in the background
      this.cache.delete(ref.sid);
      kind.removeExpired(ref);
      return { outcome: 'expired', source };
    }
    this.refresh.touchIfDue(ref, entry, now);
    this.seen.noteEntry(entry, ref.sid, now);
    return { outcome: 'valid', source, session: { via: kind.via, record, sid: ref.sid, ref, slot: entry } };
  }
}

function sameRoles(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((r, i) => r === b[i]);
}
