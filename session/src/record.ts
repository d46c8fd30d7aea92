import { hash, randomBytes } from 'node:crypto';
import { DATA_SEPARATOR, parseSessionData, type SessionData } from './session-data.js';
import { MAX_ROLES, MAX_VALUE_LENGTH, UNSAFE_CHARS } from './x-session.js';

// The session record and the Redis key layout. The gateway reads sessions and the auth
// service writes them; both import this module so the two can never drift apart.

/**
 * Format version of the record written now: a JSON object, the user id and one array (see
 * serializeRecord). Records of version 1 (a JSON object) and the early form of version 2
 * (`2:` and an array) are still read; any other version is refused.
 */
export const RECORD_VERSION = 2;
/** The first format: a JSON object with long keys and the sid stored twice. Read, never written. */
const LEGACY_RECORD_VERSION = 1;
/** How the early form of version 2 starts: the version, then a JSON array (read, never written). */
const RECORD_PREFIX = `${RECORD_VERSION}:`;
/** How a version 2 record starts as written now: a JSON object whose first member is the user id. */
const OBJECT_FORM_START = '{"sub":';

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

/** What the store keeps for one session, under `KeyLayout.session(sessionRef(token))` (see serializeRecord). */
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
  /** User agent at login, summarised (shortUserAgent), for "my sessions"; never forwarded. */
  readonly userAgent?: string;
  /** What upstream services stored in the session, by namespace (session-data.ts); absent when none did. */
  readonly data?: SessionData;
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
  return hash('sha256', sub, 'base64url').slice(0, USER_TAG_LENGTH);
}

/** Characters of SHA-256(sub) after the tag that name a user's index: 96 bits, 120 with the tag. */
const USER_KEY_LENGTH = 16;

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
    // one-shot crypto.hash, no Hash object: this runs on every request with a cookie
    sid: hash('sha256', token, 'base64url').slice(0, SID_LENGTH),
  };
}

/**
 * The Redis key layout. A session key and its user's index share a hash tag, the user slot
 * tag, so on Redis Cluster they live in one slot and a script can write or delete both at
 * once:
 *   `<prefix>s:{<tag>}<sid>`   the record of one session (a string, with the idle TTL)
 *   `<prefix>i:{<tag>}<hash>`  the user's sessions (a sorted set: member sid, score absolute
 *                              expiry); <hash> is more of SHA-256(sub), so the user id is
 *                              stored once, in the records, and every index key is as short.
 *                              Earlier releases named it `<prefix>u:{<tag>}<sub>`: another
 *                              type letter, so no user id can ever name another user's index.
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
    return this.userIndexes(sub)[0];
  }

  /**
   * Where earlier releases kept a user's index, named by the user id itself. The store's
   * scripts move what they find there into userIndex (same slot) before anything else.
   */
  legacyUserIndex(sub: string): string {
    return this.userIndexes(sub)[1];
  }

  /** userIndex and legacyUserIndex of one user, from one hash: what the store's scripts take. */
  userIndexes(sub: string): [index: string, legacy: string] {
    const h = hash('sha256', sub, 'base64url');
    const tag = h.slice(0, USER_TAG_LENGTH);
    return [`${this.prefix}i:{${tag}}${h.slice(USER_TAG_LENGTH, USER_TAG_LENGTH + USER_KEY_LENGTH)}`, `${this.prefix}u:{${tag}}${encodeURIComponent(sub)}`];
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
 * Parses and checks a stored value, found under the key of session `sid` (version 2 does not
 * store the sid: it is in the key). Anything malformed, of another version, under another
 * session's key, or holding values that could not travel safely in a header is refused with
 * InvalidRecordError.
 */
export function parseRecord(raw: string, sid: string): SessionRecord {
  // services' data follows the identity after a newline, which JSON text never holds
  const end = raw.indexOf(DATA_SEPARATOR);
  if (end === -1) return parseIdentity(raw, sid);
  let data: SessionData;
  try {
    data = parseSessionData(raw.slice(end + 1));
  } catch (err) {
    throw new InvalidRecordError((err as Error).message);
  }
  const record = parseIdentity(raw.slice(0, end), sid);
  return Object.keys(data).length > 0 ? { ...record, data } : record;
}

function parseIdentity(raw: string, sid: string): SessionRecord {
  if (raw.startsWith(OBJECT_FORM_START)) return parseCompactObject(raw, sid);
  if (raw.startsWith(RECORD_PREFIX)) return parseCompact(parseJson(raw.slice(RECORD_PREFIX.length)), sid);
  // a record written before version 2, still in Redis during an upgrade (it ends with its session)
  if (raw.startsWith('{')) return parseLegacy(raw, sid);
  const version = /^(\d{1,6}):/.exec(raw)?.[1];
  throw new InvalidRecordError(version ? `unsupported record version ${version}` : 'not a session record');
}

/** Seconds (possibly fractional) as whole milliseconds. */
function fromSeconds(s: number): number {
  return Math.round(s * 1000);
}

function parseJson(raw: string): unknown {
  try {
    return JSON.parse(raw);
  } catch {
    throw new InvalidRecordError('not JSON');
  }
}

/** Version 2: `[sub, roles (a list, or one string joined by spaces), createdAt, absolute timeout s, idle timeout s, claims?, user agent?]`. */
function parseCompact(a: unknown, sid: string): SessionRecord {
  if (!Array.isArray(a) || a.length < 5 || a.length > 7) throw new InvalidRecordError('not a version 2 record');
  const [sub, roles, createdAt, absoluteTimeout, idleTimeout, claims, userAgent] = a as unknown[];
  return checked({
    v: RECORD_VERSION,
    sid,
    sub,
    // roles without spaces (all that the auth service allows) are stored as one string
    roles: typeof roles === 'string' ? (roles === '' ? [] : roles.split(' ')) : roles,
    createdAt,
    absoluteExpiresAt: typeof createdAt === 'number' && typeof absoluteTimeout === 'number' ? createdAt + fromSeconds(absoluteTimeout) : absoluteTimeout,
    idleTimeoutMs: typeof idleTimeout === 'number' ? fromSeconds(idleTimeout) : idleTimeout,
    claims: claims === undefined || claims === 0 ? {} : claims,
    ...(userAgent !== undefined ? { userAgent } : {}),
  });
}

/** Version 2 as written: `{"sub":…,"2":[roles, createdAt, …]}` (the array above without its sub). */
function parseCompactObject(raw: string, sid: string): SessionRecord {
  const v = parseJson(raw);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidRecordError('not a version 2 record');
  const r = v as Record<string, unknown>;
  const rest = r[String(RECORD_VERSION)];
  if (!Array.isArray(rest) || Object.keys(r).length !== 2) throw new InvalidRecordError('not a version 2 record');
  return parseCompact([r.sub, ...rest], sid);
}

function parseLegacy(raw: string, sid: string): SessionRecord {
  const v = parseJson(raw);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidRecordError('not an object');
  const r = v as Record<string, unknown>;
  if (r.v !== LEGACY_RECORD_VERSION) throw new InvalidRecordError(`unsupported record version ${JSON.stringify(r.v)}`);
  if (!safeString(r.sid)) throw new InvalidRecordError('bad sid');
  // revocations name a session by its sid: a record under another sid's key could outlive them
  if (r.sid !== sid) throw new InvalidRecordError('record stored under another session id');
  return checked({ ...r, claims: r.claims ?? {} });
}

/** The checks every record passes, whatever its version. */
function checked(r: Record<string, unknown>): SessionRecord {
  if (!safeString(r.sid)) throw new InvalidRecordError('bad sid');
  if (!safeString(r.sub)) throw new InvalidRecordError('bad sub');
  if (!Array.isArray(r.roles) || r.roles.length > MAX_ROLES || !r.roles.every(safeString)) {
    throw new InvalidRecordError('bad roles');
  }
  for (const k of ['createdAt', 'absoluteExpiresAt', 'idleTimeoutMs'] as const) {
    if (typeof r[k] !== 'number' || !Number.isFinite(r[k]) || (r[k] as number) <= 0) throw new InvalidRecordError(`bad ${k}`);
  }
  const claims = r.claims;
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) throw new InvalidRecordError('bad claims');
  for (const [k, c] of Object.entries(claims)) {
    if (!CLAIM_VALUE_TYPES.has(typeof c) || (typeof c === 'string' && (c.length > MAX_VALUE_LENGTH || UNSAFE_CHARS.test(c)))) {
      throw new InvalidRecordError(`bad claim ${JSON.stringify(k).slice(0, 40)}`);
    }
  }
  if (r.userAgent !== undefined && typeof r.userAgent !== 'string') throw new InvalidRecordError('bad userAgent');
  return r as unknown as SessionRecord;
}

/**
 * The stored form, version 2: `{"sub":<sub>,"2":[roles, createdAt (ms), absolute timeout (s),
 * idle timeout (s), claims?, user agent?]}` (an early form, `2:` then the same array with the
 * sub first, is still read), roles joined by spaces into one string unless one holds a space,
 * trailing empty parts left out (claims `0` when only the user agent follows), then the
 * services' data, if any, after a newline (session-data.ts). No other key names, no sid (the
 * key holds it), the absolute expiry as a duration: less than half the bytes of version 1
 * (docs/sizing.md). It stays one JSON object, which operators and scripts read, and names its
 * user first, so a script can also tell whose record it is from how it starts (recordStarts).
 */
export function serializeRecord(record: SessionRecord): string {
  const a: unknown[] = [
    record.sub,
    record.roles.some((r) => r.includes(' ')) ? record.roles : record.roles.join(' '),
    record.createdAt,
    (record.absoluteExpiresAt - record.createdAt) / 1000,
    record.idleTimeoutMs / 1000,
  ];
  const hasClaims = Object.keys(record.claims).length > 0;
  if (record.userAgent !== undefined) a.push(hasClaims ? record.claims : 0, record.userAgent);
  else if (hasClaims) a.push(record.claims);
  const [sub, ...rest] = a;
  const identity = `${OBJECT_FORM_START}${JSON.stringify(sub)},"${RECORD_VERSION}":${JSON.stringify(rest)}}`;
  const data = record.data;
  return data && Object.keys(data).length > 0 ? `${identity}${DATA_SEPARATOR}${JSON.stringify(data)}` : identity;
}

/**
 * How every stored record of `sub` starts, in the form written now and in the early form of
 * version 2: the scripts check it, so a session key can only take data for, or be ended on
 * behalf of, the user a call names.
 */
export function recordStarts(sub: string): { readonly written: string; readonly early: string } {
  const name = JSON.stringify(sub);
  return { written: `${OBJECT_FORM_START}${name},`, early: `${RECORD_PREFIX}[${name},` };
}

/** Longest user agent kept as it is; a longer one is summarised ("Chrome 131 on Windows"). */
export const MAX_USER_AGENT_LENGTH = 48;

const BROWSERS: [RegExp, string][] = [
  [/\bEdg(?:e|A|iOS)?\/(\d+)/, 'Edge'],
  [/\bOPR\/(\d+)/, 'Opera'],
  [/\b(?:Firefox|FxiOS)\/(\d+)/, 'Firefox'],
  [/\b(?:Chrome|CriOS)\/(\d+)/, 'Chrome'],
  [/\bVersion\/(\d+)[^ ]* (?:Mobile\/\S+ )?Safari\//, 'Safari'],
];
const SYSTEMS: [RegExp, string][] = [
  [/Windows/, 'Windows'],
  [/iPhone|iPad|iPod/, 'iOS'],
  [/Android/, 'Android'],
  [/CrOS/, 'ChromeOS'],
  [/Mac OS X|Macintosh/, 'macOS'],
  [/Linux/, 'Linux'],
];

/**
 * What a session keeps of the user agent at login: "my sessions" is all it is for, so a
 * long browser string becomes its browser, major version and system, and anything else
 * is cut to MAX_USER_AGENT_LENGTH characters.
 */
export function shortUserAgent(ua: string): string {
  const s = ua.replace(new RegExp(UNSAFE_CHARS.source, 'g'), '').trim();
  if (s.length <= MAX_USER_AGENT_LENGTH) return s;
  const browser = BROWSERS.map(([re, name]) => [re.exec(s)?.[1], name] as const).find(([v]) => v !== undefined);
  const system = SYSTEMS.find(([re]) => re.test(s))?.[1];
  if (browser) return `${browser[1]} ${browser[0]}${system ? ` on ${system}` : ''}`;
  return s.slice(0, MAX_USER_AGENT_LENGTH);
}

/**
 * How long the key should live from `now`: the idle timeout, cut short by the absolute
 * expiry. Zero or less means the session is over.
 */
export function remainingLifetimeMs(record: Pick<SessionRecord, 'absoluteExpiresAt' | 'idleTimeoutMs'>, now: number): number {
  return Math.min(record.idleTimeoutMs, record.absoluteExpiresAt - now);
}
