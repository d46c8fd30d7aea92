import { createHash } from 'node:crypto';
import { createRemoteJWKSet, decodeJwt, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { LRUCache } from 'lru-cache';
import { MAX_ROLES, MAX_VALUE_LENGTH, RECORD_VERSION, UNSAFE_CHARS, rolesFromClaims, type SessionRecord } from '@sessiongate/session';
import { Entry } from './entry.js';
import type { JwtIssuer } from './jwt-issuers.js';
import type { Lookup } from './resolver.js';

/** Verified tokens kept, so a client that repeats its token costs a hash, not a signature check. */
const VERIFIED_MAX = 10_000;
/** Longest a verified token is kept (never past its exp). */
const VERIFIED_TTL_MS = 60_000;
/** Clock skew tolerated between the issuer and the gateway, in seconds. */
const CLOCK_TOLERANCE_SECONDS = 5;
/** Length of the id a token is known by here: as long as a session id. */
const SID_LENGTH = 22;

interface Trusted {
  readonly issuer: JwtIssuer;
  readonly keys: ReturnType<typeof createRemoteJWKSet>;
}

/**
 * Checks IdP access tokens on `bearer_jwt` routes with jose: the signature against the
 * issuer's JWK set (fetched and cached by createRemoteJWKSet), then `iss`, `aud`, `exp`
 * and the algorithm allow-list; the issuer's rules give the roles, as at OIDC sign-in.
 * The caller is `jwt:<issuer id>:<sub>`. Never throws.
 */
export class JwtVerifier {
  private readonly issuers = new Map<string, Trusted>();
  private readonly verified = new LRUCache<string, Entry>({ max: VERIFIED_MAX, ttl: VERIFIED_TTL_MS });

  constructor(
    issuers: readonly JwtIssuer[],
    private readonly now: () => number = Date.now,
  ) {
    for (const issuer of issuers) this.issuers.set(issuer.issuer, { issuer, keys: createRemoteJWKSet(new URL(issuer.jwksUri)) });
  }

  get configured(): boolean {
    return this.issuers.size > 0;
  }

  async resolve(token: string): Promise<Lookup> {
    const sid = createHash('sha256').update(token).digest('base64url').slice(0, SID_LENGTH);
    const ref = { tag: '', sid, via: 'jwt' as const };
    const now = this.now();
    const held = this.verified.get(sid);
    if (held?.record) {
      if (held.record.absoluteExpiresAt <= now) return { outcome: 'expired', source: 'cache' };
      return { outcome: 'valid', source: 'cache', session: { via: 'jwt', record: held.record, sid, ref, slot: held } };
    }
    let iss: unknown;
    try {
      iss = decodeJwt(token).iss;
    } catch {
      return { outcome: 'malformed', source: 'none', reason: 'not a JWT' };
    }
    const trusted = typeof iss === 'string' ? this.issuers.get(iss) : undefined;
    if (!trusted) return { outcome: 'invalid', source: 'none', reason: 'unknown issuer' };
    const { issuer } = trusted;
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, trusted.keys, {
        issuer: issuer.issuer,
        audience: [...issuer.audience],
        algorithms: [...issuer.algorithms],
        clockTolerance: CLOCK_TOLERANCE_SECONDS,
        requiredClaims: ['sub', 'exp'],
        currentDate: new Date(now),
      }));
    } catch (err) {
      // the issuer's key set out of reach: fail closed, like Redis
      if (err instanceof joseErrors.JWKSTimeout || !(err instanceof joseErrors.JOSEError)) {
        return { outcome: 'store_error', source: 'idp', error: err as Error };
      }
      if (err instanceof joseErrors.JWTExpired) return { outcome: 'expired', source: 'idp' };
      return { outcome: 'invalid', source: 'idp', reason: (err as joseErrors.JOSEError).code };
    }
    const sub = payload.sub!;
    if (sub === '' || UNSAFE_CHARS.test(sub)) return { outcome: 'invalid', source: 'idp', reason: 'unusable sub' };
    const granted = rolesFromClaims(issuer.require, issuer.rules, payload as Record<string, unknown>, MAX_ROLES);
    if ('refused' in granted) return { outcome: 'invalid', source: 'idp', reason: granted.refused };
    const plain = `jwt:${issuer.id}:${sub}`;
    const record: SessionRecord = {
      v: RECORD_VERSION,
      sid,
      sub: plain.length <= MAX_VALUE_LENGTH ? plain : `jwt:${issuer.id}#${createHash('sha256').update(sub).digest('base64url')}`,
      roles: granted.roles,
      createdAt: typeof payload.iat === 'number' ? payload.iat * 1000 : now,
      absoluteExpiresAt: payload.exp! * 1000,
      // a token has no idle timeout: it ends at its exp
      idleTimeoutMs: Number.MAX_SAFE_INTEGER,
      claims: { idp: issuer.id },
    };
    const entry = new Entry(record, null);
    this.verified.set(sid, entry, { ttl: Math.max(1, Math.min(VERIFIED_TTL_MS, record.absoluteExpiresAt - now)) });
    return { outcome: 'valid', source: 'idp', session: { via: 'jwt', record, sid, ref, slot: entry } };
  }
}
