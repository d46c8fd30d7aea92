import type { SessionRecord, SessionRef } from '@sessiongate/session';
import type { SessionSlot } from './entry.js';

// What the session stage answers for one credential: the types later stages read.

/**
 * What a lookup found. `missing` covers every well-formed token Redis holds nothing for:
 * unknown, forged, logged out, revoked and idle-expired alike (the key is gone either way).
 * `expired` is a record still stored past its absolute expiry, the one end the gateway can see.
 */
export type LookupOutcome = 'valid' | 'no_cookie' | 'malformed' | 'missing' | 'expired' | 'invalid' | 'store_error';
/** Where a lookup was answered from; `idp`: a bearer JWT checked against its issuer's keys. */
export type LookupSource = 'cache' | 'redis' | 'idp' | 'none';

/**
 * How the caller authenticated: a session cookie, an API key, an IdP access token. Session
 * ids (22 characters) and key ids (16) share the cache and the changes Redis reports: their
 * lengths keep them apart.
 */
export type CredentialVia = 'session' | 'api_key' | 'jwt';

/** A session that resolved. */
export interface ResolvedSession {
  readonly via: CredentialVia;
  readonly record: SessionRecord;
  /** The session id (record.sid): what the cache and revocations name it by. */
  readonly sid: string;
  /** Where the session is stored (its slot tag and sid, the key id for an API key). */
  readonly ref: CredentialRef;
  /** For later stages to keep what they derive from this record, while the record is held. */
  readonly slot: SessionSlot;
}

export type Lookup =
  | { outcome: 'valid'; source: 'cache' | 'redis' | 'idp'; session: ResolvedSession }
  | { outcome: 'no_cookie' | 'malformed' | 'missing' | 'expired' | 'invalid'; source: LookupSource; reason?: string }
  | { outcome: 'store_error'; source: 'redis' | 'idp'; error: Error };

/** A stored credential: a session (by default) or an API key. */
export interface CredentialRef extends SessionRef {
  readonly via?: 'api_key' | 'jwt';
}
