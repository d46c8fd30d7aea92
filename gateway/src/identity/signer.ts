import { createHmac, sign as edSign, type KeyObject } from 'node:crypto';
import createError from '@fastify/error';
import { InvalidConfig } from '../errors.js';
import { DEFAULT_X_SESSION_ISSUER, KeyConfigError, RESERVED_CLAIMS, SESSION_DATA_CLAIM, type KeySet, type SessionData, type SigningKey } from '@sessiongate/session';
import { DEFAULT_X_SESSION_TTL_MS } from '../defaults.js';

/** Longest X-Session (the token, in bytes) the gateway forwards; common header-line limits are 8 KiB. */
export const MAX_X_SESSION_BYTES = 8192;

/** The X-Session for a session would exceed MAX_X_SESSION_BYTES: the request is refused, not forwarded. */
export const IdentityTooLarge = createError(
  'SG_ERR_IDENTITY_TOO_LARGE',
  'The X-Session for this session would be %d bytes, over the %d-byte limit',
  500,
);

/** Who the user is: taken from the session record, never from the token or cookie. */
export interface IdentityClaims {
  sub: string;
  roles: readonly string[];
  /** Opaque session id (not the token). */
  sid: string;
  /** How the caller authenticated: `session`, `api_key` or `jwt` (RFC 8176 style, our own values). */
  amr?: readonly string[];
  /** The API key's id, for a caller that sent one (never the key). */
  keyId?: string;
  /** Extra claims (profile fields); they never override a registered claim. */
  extra?: Readonly<Record<string, string | number | boolean>>;
  /** The session data the route reads, by namespace: the `sg_data` claim. */
  data?: SessionData | null;
}

/** Options of {@link XSessionSigner}. */
export interface XSessionSignerOptions {
  /** @default DEFAULT_X_SESSION_ISSUER */
  issuer?: string;
  /** @default DEFAULT_X_SESSION_TTL_MS */
  ttlMs?: number;
}

/**
 * Signs X-Session headers: compact JWS (JWT) with `alg` HS256 or EdDSA and the signing
 * key's `kid`. One instance per KeySet: a key reload builds a new signer.
 */
export class XSessionSigner {
  readonly kid: string;
  readonly issuer: string;
  readonly ttlMs: number;
  readonly #ttlSeconds: number;
  // `<base64url(header)>.`, computed once: the header never changes for a key.
  readonly #headerDot: string;
  readonly #signature: (input: string) => string;
  // Header, both dots and the signature: the token minus its payload.
  readonly #fixedBytes: number;

  constructor(keys: KeySet, opts: XSessionSignerOptions = {}) {
    const { issuer = DEFAULT_X_SESSION_ISSUER, ttlMs = DEFAULT_X_SESSION_TTL_MS } = opts;
    if (typeof issuer !== 'string' || issuer === '') throw new InvalidConfig('X-Session issuer must be a non-empty string');
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new InvalidConfig('X_SESSION_TTL must be a positive duration');

    const key = keys.signing;
    this.kid = key.kid;
    this.issuer = issuer;
    this.ttlMs = ttlMs;
    this.#ttlSeconds = Math.ceil(ttlMs / 1000);
    this.#headerDot = `${base64url(JSON.stringify({ alg: key.alg, typ: 'JWT', kid: key.kid }))}.`;

    const { sign, length } = jwsSignature(key);
    this.#signature = sign;
    this.#fixedBytes = this.#headerDot.length + 1 + length;
  }

  /**
   * Signs one X-Session for route `aud` (see payload()).
   *
   * @throws IdentityTooLarge (`SG_ERR_IDENTITY_TOO_LARGE`) when the token would exceed MAX_X_SESSION_BYTES.
   */
  sign(aud: string, claims: IdentityClaims, nowMs: number = Date.now()): { token: string; expiresAtMs: number } {
    const payload = this.payload(aud, claims, nowMs);
    const json = Buffer.from(JSON.stringify(payload), 'utf8');
    // Check before signing: an oversized identity must not cost a signature.
    const size = this.sizeOf(json.length);
    if (size > MAX_X_SESSION_BYTES) throw new IdentityTooLarge(size, MAX_X_SESSION_BYTES);

    const input = this.#headerDot + json.toString('base64url');
    return { token: `${input}.${this.#signature(input)}`, expiresAtMs: (payload.exp as number) * 1000 };
  }

  /** Bytes of a token whose payload is `payloadBytes` of JSON. */
  sizeOf(payloadBytes: number): number {
    return this.#fixedBytes + Math.ceil((payloadBytes * 4) / 3);
  }

  /**
   * The claims of one X-Session for route `aud`, as signed: `iat` is `now` in whole seconds
   * and `exp` is `iat` plus the TTL rounded up to a second.
   */
  payload(aud: string, claims: IdentityClaims, nowMs: number = Date.now()): Record<string, unknown> {
    const iat = Math.floor(nowMs / 1000);
    const exp = iat + this.#ttlSeconds;

    // Extras first, then the registered claims, which always win.
    const payload: Record<string, unknown> = {};
    const extra = claims.extra;
    if (extra !== undefined) {
      for (const name of Object.keys(extra)) {
        if (RESERVED_CLAIMS.has(name)) continue;
        const value = extra[name];
        // Records come from Redis: drop anything a JWT claim can't faithfully carry.
        if (typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && Number.isFinite(value))) {
          payload[name] = value;
        }
      }
    }
    payload.iss = this.issuer;
    payload.aud = aud;
    payload.sub = claims.sub;
    payload.roles = claims.roles;
    payload.sid = claims.sid;
    if (claims.amr) payload.amr = claims.amr;
    if (claims.keyId !== undefined) payload.key_id = claims.keyId;
    if (claims.data) payload[SESSION_DATA_CLAIM] = claims.data;
    payload.iat = iat;
    payload.exp = exp;
    return payload;
  }
}

/**
 * The JWS signature function of a signing key (base64url over the signing input) and the
 * length of what it returns.
 *
 * @throws KeyConfigError when an EdDSA key has no private part.
 */
export function jwsSignature(key: SigningKey): { sign: (input: string) => string; length: number } {
  if (key.alg === 'HS256') {
    const secret = key.secret;
    // base64url of 32 bytes
    return { sign: (input) => createHmac('sha256', secret).update(input).digest('base64url'), length: 43 };
  }
  if (key.privateKey === null) {
    throw new KeyConfigError(`X_SESSION_KEYS: the signing key (kid ${JSON.stringify(key.kid)}) has no private part "d"`);
  }
  const privateKey: KeyObject = key.privateKey;
  // Ed25519 takes no digest: the algorithm argument must be null; base64url of 64 bytes
  return { sign: (input) => edSign(null, Buffer.from(input, 'latin1'), privateKey).toString('base64url'), length: 86 };
}

function base64url(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64url');
}
