import { InvalidRecordError, RECORD_VERSION, apiKeyDigest, parseApiKeyRecord, parseRecord, type ApiKeyRecord, type SessionRecord, type SessionRef } from '@sessiongate/session';

/**
 * Room on a resolved session for what a later stage derives from its record (the identity
 * stage keeps the session's signed headers there). The session stage never looks inside. It
 * lives as long as the record is held: a record read afresh comes with an empty one.
 */
export interface SessionSlot {
  derived: unknown;
}

/**
 * What the resolver holds of one session (or of a token that has none), kept small: a
 * gateway may hold a hundred thousand. Every field is set in the constructor, so all live
 * in the object itself.
 */
export class Entry implements SessionSlot {
  /**
   * When this gateway last pushed the session's idle expiry forward (epoch ms), or its
   * creation. Carried over when the session is read again after its entry expired or was
   * evicted; after an invalidation it starts from the creation time, which costs at most
   * one early refresh.
   */
  touchedAt: number;
  /** The second this entry last counted its session as seen (for `activeSessions`). */
  seenAtSecond = 0;
  /** The stored value the record was parsed from (kept for entries of the uncached path only). */
  raw: string | null = null;
  derived: unknown = undefined;
  /** For an API key: the SHA-256 every request's key is checked against. */
  apiKeyDigest: Buffer | null = null;

  constructor(
    readonly record: SessionRecord | null,
    /** Why there is no record: 'missing' (nothing stored for the token) or 'invalid' (corrupt record). */
    readonly negative: 'missing' | 'invalid' | null,
    readonly reason?: string,
  ) {
    this.touchedAt = record ? record.createdAt : 0;
  }
}

/**
 * Until when a cached entry may answer without asking Redis: its idle deadline as this
 * gateway last pushed it (the last refresh, or the creation) and its absolute deadline.
 * Another gateway may have pushed the idle deadline further; then this one reads it again.
 */
export function cacheDeadline(entry: Entry): number {
  const r = entry.record!;
  return Math.min(r.absoluteExpiresAt, entry.touchedAt + r.idleTimeoutMs);
}

const NO_CLAIMS: Readonly<Record<string, string>> = Object.freeze({});

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

/** Turns stored values into entries, sharing what sessions have in common. */
export class EntryParser {
  private readonly roleSets = new RoleSets(10_000);

  /**
   * Parses a stored value into an entry; never throws. `touchedAt` is when this session was
   * last refreshed, if known: it still holds (the expiry fields of a session never change).
   */
  parse(ref: SessionRef, raw: string | null, touchedAt?: number): Entry {
    if (raw === null) return new Entry(null, 'missing');
    try {
      const record = parseRecord(raw, ref.sid);
      const entry = new Entry(this.gatewayView(record), null);
      if (touchedAt !== undefined) entry.touchedAt = Math.max(touchedAt, entry.touchedAt);
      return entry;
    } catch (err) {
      return new Entry(null, 'invalid', err instanceof InvalidRecordError ? err.message : 'unreadable record');
    }
  }

  /**
   * Parses a stored API key record into an entry, as a session that never idles and ends
   * when the key expires; never throws.
   */
  parseApiKey(ref: SessionRef, raw: string | null): Entry {
    if (raw === null) return new Entry(null, 'missing');
    try {
      const key = parseApiKeyRecord(raw);
      if (key.id !== ref.sid) return new Entry(null, 'invalid', 'record stored under another key id');
      const entry = new Entry(this.keyView(key), null);
      entry.apiKeyDigest = apiKeyDigest(key);
      return entry;
    } catch (err) {
      return new Entry(null, 'invalid', err instanceof InvalidRecordError ? err.message : 'unreadable record');
    }
  }

  private keyView(k: ApiKeyRecord): SessionRecord {
    return {
      v: RECORD_VERSION,
      sid: k.id,
      sub: k.sub,
      roles: this.roleSets.intern(k.roles),
      createdAt: k.createdAt,
      absoluteExpiresAt: k.expiresAt ?? Number.MAX_SAFE_INTEGER,
      // a key has no idle timeout: its expiry is never pushed forward
      idleTimeoutMs: Number.MAX_SAFE_INTEGER,
      claims: NO_CLAIMS,
    };
  }

  /** What the gateway keeps of a record: the user agent (for "my sessions" only) stays in Redis. */
  private gatewayView(r: SessionRecord): SessionRecord {
    const view = {
      v: r.v,
      sid: r.sid,
      sub: r.sub,
      roles: this.roleSets.intern(r.roles),
      createdAt: r.createdAt,
      absoluteExpiresAt: r.absoluteExpiresAt,
      idleTimeoutMs: r.idleTimeoutMs,
      claims: r.claims,
    };
    // services' data, for the routes that read it (most sessions hold none)
    return r.data === undefined ? view : { ...view, data: r.data };
  }
}
