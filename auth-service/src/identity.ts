import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify } from 'jose';
import { SettingError } from '@sessiongate/service-kit';
import {
  KeyConfigError,
  loadKeySet,
  verificationKeyFor as keyNamedBy,
  verificationKeys,
  type KeySet,
  type VerificationKey,
  type VerificationKeys,
} from '@sessiongate/session';
import { Unauthenticated } from './errors.js';

// X-Session verification: the auth service is an upstream like any other. It checks the
// gateway's signed header with a stock JWT library (jose) and never sees the cookie.

/** Clock skew tolerated between the gateway and this service, in seconds. */
export const CLOCK_TOLERANCE_SECONDS = 5;

export type { VerificationKey, VerificationKeys };

/** Who sent the request, from a verified X-Session. */
export interface Identity {
  readonly sub: string;
  readonly roles: readonly string[];
  /** The current session's id (not its token); an API key's id for a key. */
  readonly sid: string;
  /** How the caller authenticated, as the gateway says (`session`, `api_key`, `jwt`); empty when it does not say. */
  readonly amr: readonly string[];
}

/**
 * Loads X_SESSION_KEYS with the gateway's own loader: a JWK set as JSON text, or the path of
 * a file holding one. Private parts (`d`) are dropped: verifying needs only the public key.
 * Messages never show key material.
 *
 * @throws SettingError naming X_SESSION_KEYS.
 */
export function loadVerificationKeys(value: string | undefined): VerificationKeys {
  if (!value?.trim()) throw new SettingError('X_SESSION_KEYS', "required: the gateway's JWK set (JSON) or the path of a file holding it");
  let set: KeySet;
  try {
    set = loadKeySet(value, 'verify');
  } catch (err) {
    if (!(err instanceof KeyConfigError)) throw err;
    throw new SettingError('X_SESSION_KEYS', err.message.replace(/^X_SESSION_KEYS:?\s*/, ''));
  }
  return verificationKeys(set);
}

/**
 * The key a token from the gateway names (by `alg` and `kid`; without a `kid`, the only key of
 * that `alg`). Throws when there is none.
 */
export function verificationKeyFor(keys: VerificationKeys, token: string): VerificationKey {
  const key = keyNamedBy(keys, decodeProtectedHeader(token));
  if (!key) throw new joseErrors.JWKSNoMatchingKey();
  return key;
}

export interface XSessionVerifierOptions {
  /** Expected `iss`. @default 'sessiongate' */
  issuer: string;
  /** Expected `aud`: the gateway's name for this route. @default 'auth' */
  audience: string;
}

/** Checks X-Session headers against the configured keys, issuer and audience. */
export class XSessionVerifier {
  constructor(
    private readonly keys: VerificationKeys,
    private readonly opts: XSessionVerifierOptions,
  ) {}

  /** The identity in a valid header; throws (with a reason for logs) otherwise. */
  async verify(token: string): Promise<Identity> {
    const key = verificationKeyFor(this.keys, token);
    const { payload } = await jwtVerify(token, key.key, {
      algorithms: [key.alg],
      issuer: this.opts.issuer,
      audience: this.opts.audience,
      clockTolerance: CLOCK_TOLERANCE_SECONDS,
      requiredClaims: ['sub', 'sid', 'exp'],
    });
    const { sub, sid, roles, amr } = payload as { sub?: unknown; sid?: unknown; roles?: unknown; amr?: unknown };
    if (typeof sub !== 'string' || sub === '' || typeof sid !== 'string' || sid === '') throw new Error('sub and sid must be strings');
    if (!Array.isArray(roles) || !roles.every((r) => typeof r === 'string')) throw new Error('roles must be a list of strings');
    const methods = Array.isArray(amr) ? amr.filter((m): m is string => typeof m === 'string') : [];
    return Object.freeze({ sub, sid, roles: Object.freeze([...roles]), amr: Object.freeze(methods) });
  }
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified X-Session, or null when there is none (or it is not valid). */
    identity: Identity | null;
  }
}

export interface IdentityPluginOptions {
  verifier: XSessionVerifier;
}

/** Verifies the X-Session of every request into `request.identity`. */
const identityPlugin: FastifyPluginAsync<IdentityPluginOptions> = async (fastify, opts) => {
  fastify.decorateRequest('identity', null);
  fastify.addHook('onRequest', async (request) => {
    const header = request.headers['x-session'];
    if (header === undefined) return;
    // repeated headers are ambiguous: never trusted
    if (typeof header !== 'string') {
      request.log.warn('several X-Session headers: ignored');
      return;
    }
    try {
      request.identity = await opts.verifier.verify(header);
    } catch (err) {
      request.log.warn({ code: (err as { code?: string }).code, reason: (err as Error).message }, 'invalid X-Session: ignored');
    }
  });
};

export default fp(identityPlugin, { name: 'sessiongate-auth-identity', fastify: '5.x' });

/** The identity of a request that needs a session; 401 without one. */
export function requireIdentity(request: FastifyRequest): Identity {
  if (!request.identity) throw new Unauthenticated();
  return request.identity;
}
