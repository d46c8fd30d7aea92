import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import { InvalidRecordError, userTag, type KeyLayout, type SessionRef } from './record.js';
import { MAX_ROLES, MAX_VALUE_LENGTH, UNSAFE_CHARS } from './x-session.js';

// API keys: the key format, the stored record and its Redis keys. The auth service and the
// CLI write keys, the gateway reads them; both import this module.

/** What every API key starts with, so secret scanners can recognise one. */
export const API_KEY_PREFIX = 'sgk_';
/** Length of a key id: the owner's slot tag (4) and 12 random characters (72 bits). */
export const API_KEY_ID_LENGTH = 16;
/** Bytes of randomness in a key's secret (256 bits); base64url, 43 characters. */
export const API_KEY_SECRET_BYTES = 32;
/**
 * A whole key: `sgk_<id>_<secret>`, 64 characters. Both parts are base64url and have fixed
 * lengths, so the `_` between them is found by position, never by search.
 */
export const API_KEY_PATTERN = /^sgk_([A-Za-z0-9_-]{16})_([A-Za-z0-9_-]{43})$/;
/** Format version of a key record; a record of any other version is refused. */
export const API_KEY_RECORD_VERSION = 1;
/** Most keys one user may hold at a time. @default 100 */
export const MAX_API_KEYS_PER_USER = 100;
/** Longest key name. */
export const MAX_API_KEY_NAME_LENGTH = 64;

/** What the store keeps for one key, as JSON under `ApiKeyLayout.key(ref)`. Never the key itself. */
export interface ApiKeyRecord {
  readonly v: number;
  /** Public id: listed, logged and forwarded as `key_id`. */
  readonly id: string;
  /** The owner's user id. */
  readonly sub: string;
  readonly name: string;
  /** base64url SHA-256 of the whole key. */
  readonly hash: string;
  /** The roles asked for at creation; null: whatever the owner has. */
  readonly scope: readonly string[] | null;
  /** The roles the key carries now: its scope cut down to the owner's current roles. */
  readonly roles: readonly string[];
  /** Epoch milliseconds. */
  readonly createdAt: number;
  /** Epoch milliseconds, or null for a key that does not expire. */
  readonly expiresAt: number | null;
}

/** A key, as the CLI and POST /auth/keys show it once. */
export interface MintedApiKey {
  readonly key: string;
  readonly id: string;
  readonly hash: string;
}

/** A new key for `sub`: its id starts with the owner's slot tag, so the gateway finds the slot from the key alone. */
export function mintApiKey(sub: string): MintedApiKey {
  const id = userTag(sub) + randomBytes(9).toString('base64url');
  const key = `${API_KEY_PREFIX}${id}_${randomBytes(API_KEY_SECRET_BYTES).toString('base64url')}`;
  return { key, id, hash: apiKeyHash(key) };
}

export function apiKeyHash(key: string): string {
  return hash('sha256', key, 'base64url');
}

/** Where a well-formed key's record lives (tag and id), or null for anything else. */
export function apiKeyRef(key: string): SessionRef | null {
  const m = API_KEY_PATTERN.exec(key);
  return m ? { tag: m[1]!.slice(0, 4), sid: m[1]! } : null;
}

/** The stored hash as bytes, decoded once (what {@link apiKeyMatches} compares against). */
export function apiKeyDigest(record: Pick<ApiKeyRecord, 'hash'>): Buffer {
  return Buffer.from(record.hash, 'base64url');
}

/** Whether `key` is the key whose digest this is (constant time). */
export function apiKeyMatches(digest: Buffer, key: string): boolean {
  const presented = hash('sha256', key, 'buffer');
  return presented.length === digest.length && timingSafeEqual(presented, digest);
}

/** A key id as the API takes it: same alphabet and length as minted ones. */
export function isApiKeyId(id: string): boolean {
  return /^[A-Za-z0-9_-]{16}$/.test(id);
}

/** The roles a key carries: its scope within the owner's roles (all of them without a scope). */
export function effectiveKeyRoles(scope: readonly string[] | null, ownerRoles: readonly string[]): string[] {
  return scope === null ? [...ownerRoles] : scope.filter((r) => ownerRoles.includes(r));
}

/**
 * The Redis keys of API keys, in the owner's slot like its sessions (same hash tag), so one
 * script revokes all of a user's keys:
 *   `<prefix>k:{<tag>}<id>`   one key's record (a string; expires with the key)
 *   `<prefix>uk:{<tag>}<sub>` the user's keys (a sorted set: member id, score expiry or +inf)
 *   `<prefix>ku:{<tag>}<sub>` when each key was last used (a hash: id → epoch ms)
 */
export class ApiKeyLayout {
  constructor(readonly keys: KeyLayout) {}

  /** What every key record's name starts with (the gateways track changes under it). */
  get recordPrefix(): string {
    return `${this.keys.prefix}k:`;
  }

  key(ref: SessionRef): string {
    return `${this.recordPrefix}{${ref.tag}}${ref.sid}`;
  }

  /** What the record keys of the users with this tag start with (the id follows). */
  keyPrefix(tag: string): string {
    return `${this.recordPrefix}{${tag}}`;
  }

  userKeys(sub: string): string {
    return `${this.keys.prefix}uk:{${userTag(sub)}}${encodeURIComponent(sub)}`;
  }

  lastUsed(sub: string): string {
    return `${this.keys.prefix}ku:{${userTag(sub)}}${encodeURIComponent(sub)}`;
  }

  /** Failed key attempts of one client address (the gateway's throttle). */
  failures(ip: string): string {
    return `${this.keys.prefix}t:apikey:{${encodeURIComponent(ip)}}`;
  }
}

function safeString(v: unknown, max = MAX_VALUE_LENGTH): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= max && !UNSAFE_CHARS.test(v);
}

function roleList(v: unknown): v is string[] {
  return Array.isArray(v) && v.length <= MAX_ROLES && v.every((r) => safeString(r));
}

/** Why a key name cannot be used, or null. */
export function apiKeyNameProblem(name: string): string | null {
  return safeString(name, MAX_API_KEY_NAME_LENGTH) ? null : `a key name is 1 to ${MAX_API_KEY_NAME_LENGTH} printable characters`;
}

/** Parses and checks a stored key record; anything else is refused with InvalidRecordError. */
export function parseApiKeyRecord(raw: string): ApiKeyRecord {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new InvalidRecordError('not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new InvalidRecordError('not an object');
  const r = v as Record<string, unknown>;
  if (r.v !== API_KEY_RECORD_VERSION) throw new InvalidRecordError(`unsupported key record version ${JSON.stringify(r.v)}`);
  if (typeof r.id !== 'string' || !isApiKeyId(r.id)) throw new InvalidRecordError('bad id');
  if (!safeString(r.sub)) throw new InvalidRecordError('bad sub');
  if (!safeString(r.name, MAX_API_KEY_NAME_LENGTH)) throw new InvalidRecordError('bad name');
  if (typeof r.hash !== 'string' || !/^[A-Za-z0-9_-]{43}$/.test(r.hash)) throw new InvalidRecordError('bad hash');
  if (r.scope !== null && !roleList(r.scope)) throw new InvalidRecordError('bad scope');
  if (!roleList(r.roles)) throw new InvalidRecordError('bad roles');
  if (typeof r.createdAt !== 'number' || !(r.createdAt > 0)) throw new InvalidRecordError('bad createdAt');
  if (r.expiresAt !== null && (typeof r.expiresAt !== 'number' || !(r.expiresAt > 0))) throw new InvalidRecordError('bad expiresAt');
  return r as unknown as ApiKeyRecord;
}
