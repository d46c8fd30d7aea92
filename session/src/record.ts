import { createHash, randomBytes } from 'node:crypto';
import { MAX_ROLES, MAX_VALUE_LENGTH, UNSAFE_CHARS } from './x-session.js';

// The session record and the Redis key layout. The gateway reads sessions and the auth
// service writes them; both import this module so the two can never drift apart.

/** Format version of the record; a record of any other version is refused. */
export const RECORD_VERSION = 1;

/** Bytes of randomness in a session token (256 bits). */
export const TOKEN_BYTES = 32;
/** Length of the token's random part: base64url of TOKEN_BYTES, no padding. */
export const TOKEN_RANDOM_LENGTH = 43;
/** Length of the user slot tag a token ends with. */
export const USER_TAG_LENGTH = 4;
/** Length of a token: `<random>.<user tag>`. */
export const TOKEN_LENGTH = TOKEN_RANDOM_LENGTH + 1 + USER_TAG_LENGTH;
/** Length of a session id: base64url of the first 132 bits of SHA-256(token). */
export const SID_LENGTH = 22;
const TOKEN_RE = /^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{4}$/;
// the format before tokens carried the user tag: refused, with a warning, never looked up
const LEGACY_TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;

/** Default key prefix of everything sessiongate keeps in Redis. */
export const DEFAULT_KEY_PREFIX = 'sg:';

/** What the store keeps for one session, as JSON under `KeyLayout.session(sessionRef(token))`. */
export interface SessionRecord {
  /** Format version, RECORD_VERSION. */
  readonly v: number;
  /**
   * Session id: names the session in X-Session, the auth API, the user index and the session
   * key. Derived from the token by a one-way hash, so it never leads back to the token.
   */
  readonly sid: string;
  /** User id. */
  readonly sub: string;
  readonly roles: readonly string[];
  /** Epoch milliseconds. */
  readonly createdAt: number;
  /** Epoch milliseconds; never extended. */
  readonly absoluteExpiresAt: number;
  /** Idle timeout this session was created with, in milliseconds. */
  readonly idleTimeoutMs: number;
  /** Extra claims forwarded in X-Session (profile fields); never overrides a registered claim. */
  readonly claims: Readonly<Record<string, string | number | boolean>>;
  /** User agent at login, for "my sessions"; never forwarded. */
  readonly userAgent?: string;
}

/** Where a token's session lives: the user slot tag and the session id, both read off the token. */
export interface SessionRef {
  readonly tag: string;
  readonly sid: string;
}

/**
 * The user slot tag: a few base64url characters of SHA-256(sub). The session keys and the
 * index of a user all carry it as their Redis Cluster hash tag, so one script can create or
 * revoke a user's sessions atomically; the gateway, which only sees the cookie, reads it off
 * the token. 24 bits spread users over all 16384 slots; users that share a tag only share a slot.
 */
export function userTag(sub: string): string {
  return createHash('sha256').update(sub).digest('base64url').slice(0, USER_TAG_LENGTH);
}

/** A new token for a session of `sub`: 256 random bits, then the user's slot tag. */
export function mintToken(sub: string): string {
  return `${randomBytes(TOKEN_BYTES).toString('base64url')}.${userTag(sub)}`;
}

/** Cheap shape check before any hashing or Redis call. */
export function isWellFormedToken(token: string): boolean {
  return TOKEN_RE.test(token);
}

/** A token of the format before slot tags: its session, if any, is no longer looked up. */
export function isLegacyToken(token: string): boolean {
  return LEGACY_TOKEN_RE.test(token);
}

/**
 * The session a well-formed token names. The sid hashes the whole token, tag included: a
 * token with its tag changed names no session at all. 132 bits: no collisions to fear, and
 * short enough that a user index stays in Redis' compact encoding.
 */
export function sessionRef(token: string): SessionRef {
  return {
    tag: token.slice(TOKEN_RANDOM_LENGTH + 1),
    sid: createHash('sha256').update(token).digest('base64url').slice(0, SID_LENGTH),
  };
}

/**
 * The Redis key layout. A session key and its user's index share a hash tag, the user slot
 * tag, so on Redis Cluster they live in one slot and a script can write or delete both at
 * once:
 *   `<prefix>s:{<tag>}<sid>`  the record of one session (a string, with the idle TTL)
 *   `<prefix>u:{<tag>}<sub>`  the user's sessions (a sorted set: member sid, score absolute expiry)
 */
export class KeyLayout {
  readonly prefix: string;

  constructor(prefix: string = DEFAULT_KEY_PREFIX) {
    // a brace in the prefix would become (part of) the hash tag and split a user's keys across slots
    const problem = keyPrefixProblem(prefix);
    if (problem) throw new TypeError(`key prefix ${JSON.stringify(prefix)}: ${problem}`);
    this.prefix = prefix;
  }

  /** The record of one session. */
  session(ref: SessionRef): string {
    return `${this.prefix}s:{${ref.tag}}${ref.sid}`;
  }

  /** What every session key of the users with this tag starts with (the sid follows). */
  sessionPrefix(tag: string): string {
    return `${this.prefix}s:{${tag}}`;
  }

  /** Sorted set of one user's sessions: member sid, score absolute expiry (ms). */
  userIndex(sub: string): string {
    return `${this.prefix}u:{${userTag(sub)}}${encodeURIComponent(sub)}`;
  }

  /** Pub/sub channel on which revocations reach every gateway's local cache. */
  get invalidationChannel(): string {
    return `${this.prefix}invalidate`;
  }

  /** Login throttling counters. */
  throttle(kind: 'account' | 'ip', id: string): string {
    return `${this.prefix}t:${kind}:{${encodeURIComponent(id)}}`;
  }
}

/** Why a key prefix cannot be used, or null. */
export function keyPrefixProblem(prefix: string): string | null {
  return /[{}]/.test(prefix) ? 'must not contain { or } (they would change the Redis Cluster hash tag)' : null;
}

const CLAIM_VALUE_TYPES = new Set(['string', 'number', 'boolean']);

function safeString(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_VALUE_LENGTH && !UNSAFE_CHARS.test(v);
}

/** Why a stored value is not a usable record (for logs; never shown to clients). */
export class InvalidRecordError extends Error {
  override readonly name = 'InvalidRecordError';
}

/**
 * Parses and checks a stored value. Anything malformed, of another version, or holding values
 * that could not travel safely in a header is refused with InvalidRecordError.
 */
export function parseRecord(raw: string): SessionRecord {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new InvalidRecordError('not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidRecordError('not an object');
  const r = v as Record<string, unknown>;
  if (r.v !== RECORD_VERSION) throw new InvalidRecordError(`unsupported record version ${JSON.stringify(r.v)}`);
  if (!safeString(r.sid)) throw new InvalidRecordError('bad sid');
  if (!safeString(r.sub)) throw new InvalidRecordError('bad sub');
  if (!Array.isArray(r.roles) || r.roles.length > MAX_ROLES || !r.roles.every(safeString)) {
    throw new InvalidRecordError('bad roles');
  }
  for (const k of ['createdAt', 'absoluteExpiresAt', 'idleTimeoutMs'] as const) {
    if (typeof r[k] !== 'number' || !Number.isFinite(r[k]) || (r[k] as number) <= 0) throw new InvalidRecordError(`bad ${k}`);
  }
  const claims = r.claims ?? {};
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) throw new InvalidRecordError('bad claims');
  for (const [k, c] of Object.entries(claims)) {
    if (!CLAIM_VALUE_TYPES.has(typeof c) || (typeof c === 'string' && (c.length > MAX_VALUE_LENGTH || UNSAFE_CHARS.test(c)))) {
      throw new InvalidRecordError(`bad claim ${JSON.stringify(k).slice(0, 40)}`);
    }
  }
  if (r.userAgent !== undefined && typeof r.userAgent !== 'string') throw new InvalidRecordError('bad userAgent');
  return r as unknown as SessionRecord;
}

export function serializeRecord(record: SessionRecord): string {
  return JSON.stringify(record);
}

/**
 * How long the key should live from `now`: the idle timeout, cut short by the absolute
 * expiry. Zero or less means the session is over.
 */
export function remainingLifetimeMs(record: Pick<SessionRecord, 'absoluteExpiresAt' | 'idleTimeoutMs'>, now: number): number {
  return Math.min(record.idleTimeoutMs, record.absoluteExpiresAt - now);
}
