import { createHash, randomBytes } from 'node:crypto';

// The session record and the Redis key layout. The gateway reads sessions and the auth
// service writes them; both import this module so the two can never drift apart.

/** Format version of the record; a record of any other version is refused. */
export const RECORD_VERSION = 1;

/** Bytes of randomness in a session token (256 bits). */
export const TOKEN_BYTES = 32;
/** Length of a token: base64url of TOKEN_BYTES, no padding. */
export const TOKEN_LENGTH = 43;
const TOKEN_RE = /^[A-Za-z0-9_-]{43}$/;

/** Default key prefix of everything sessiongate keeps in Redis. */
export const DEFAULT_KEY_PREFIX = 'sg:';

/** What the store keeps for one session, as JSON under `sessionKey(hashToken(token))`. */
export interface SessionRecord {
  /** Format version, RECORD_VERSION. */
  readonly v: number;
  /** Opaque session id: names the session in X-Session and the auth API; not the token. */
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

export function mintToken(): string {
  return randomBytes(TOKEN_BYTES).toString('base64url');
}

export function mintSessionId(): string {
  return randomBytes(16).toString('base64url');
}

/** Cheap shape check before any hashing or Redis call. */
export function isWellFormedToken(token: string): boolean {
  return TOKEN_RE.test(token);
}

/** SHA-256 of the token, hex: the only form of the token that is ever stored. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/**
 * The Redis key layout. Session keys and user indexes live in different hash slots on
 * purpose: no operation ever needs two of them in one command, so Cluster shards them freely.
 */
export class KeyLayout {
  readonly prefix: string;

  constructor(prefix: string = DEFAULT_KEY_PREFIX) {
    this.prefix = prefix;
  }

  /** The record of one session. */
  session(tokenHash: string): string {
    return `${this.prefix}s:${tokenHash}`;
  }

  /** Sorted set of one user's sessions: member `sid.tokenHash`, score absolute expiry (ms). */
  userIndex(sub: string): string {
    return `${this.prefix}u:{${encodeURIComponent(sub)}}`;
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

const CLAIM_VALUE_TYPES = new Set(['string', 'number', 'boolean']);
// C0 controls, DEL, and the line/paragraph separators: never allowed in a value we forward
const UNSAFE_CHARS = /[\u0000-\u001f\u007f\u2028\u2029]/;
/** Longest sub / role / claim string accepted from the store. */
export const MAX_VALUE_LENGTH = 256;
/** Most roles a session may carry. */
export const MAX_ROLES = 64;

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
