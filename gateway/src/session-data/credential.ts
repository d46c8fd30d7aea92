import { decodeProtectedHeader, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { verificationKeyFor, verificationKeys, type KeySet, type VerificationKeys } from '@sessiongate/session';
import { SessionDataUnauthenticated } from '../errors.js';

// A session data write is authorised by the X-Session the gateway sent with the request it
// belongs to: signed by the gateway's own keys, still valid, for one route (`aud`) and one
// session (`sub`, `sid`). Clients never see that header, so they can never present one.

/** Who may write, as the X-Session says. */
export interface WriteCredential {
  readonly route: string;
  readonly sub: string;
  readonly sid: string;
  /** How the caller authenticated: only `session` has a session to write to. */
  readonly amr: readonly string[];
  /** The verified claims, for sizing the X-Session the data will travel in. */
  readonly payload: JWTPayload;
}

export class CredentialVerifier {
  readonly #keys: VerificationKeys;

  constructor(
    keys: KeySet,
    private readonly issuer: string,
  ) {
    this.#keys = verificationKeys(keys);
  }

  /** @throws SessionDataUnauthenticated naming what is wrong (never the token). */
  async verify(header: string | string[] | undefined): Promise<WriteCredential> {
    if (typeof header !== 'string' || header === '') throw new SessionDataUnauthenticated('no X-Session header');
    let payload: JWTPayload;
    try {
      const key = verificationKeyFor(this.#keys, decodeProtectedHeader(header));
      if (!key) throw new SessionDataUnauthenticated('it is not signed with a key of this gateway');
      ({ payload } = await jwtVerify(header, key.key, { issuer: this.issuer, algorithms: [key.alg] }));
    } catch (err) {
      if (err instanceof SessionDataUnauthenticated) throw err;
      if (err instanceof joseErrors.JWTExpired) throw new SessionDataUnauthenticated('it has expired');
      throw new SessionDataUnauthenticated('it is not a valid X-Session of this gateway');
    }
    const { aud, sub, sid, amr } = payload as JWTPayload & { sid?: unknown; amr?: unknown };
    if (typeof aud !== 'string' || typeof sub !== 'string' || typeof sid !== 'string') {
      throw new SessionDataUnauthenticated('it names no route and session');
    }
    return { route: aud, sub, sid, amr: Array.isArray(amr) ? amr.filter((a): a is string => typeof a === 'string') : [], payload };
  }
}
