import { createPublicKey, createSecretKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { decodeProtectedHeader, errors as joseErrors, jwtVerify } from 'jose';
import { SettingError } from '@sessiongate/service-kit';
import { Unauthenticated } from './errors.js';

// X-Session verification: the auth service is an upstream like any other. It checks the
// gateway's signed header with a stock JWT library (jose) and never sees the cookie.

/** Shortest HS256 secret accepted (RFC 7518 §3.2: at least the hash size). */
const MIN_HS256_SECRET_BYTES = 32;
const ED25519_KEY_BYTES = 32;
const BASE64URL_RE = /^[A-Za-z0-9_-]*$/;
/** Clock skew tolerated between the gateway and this service, in seconds. */
export const CLOCK_TOLERANCE_SECONDS = 5;

/** One key an X-Session may be signed with: the public part for EdDSA, the secret for HS256. */
export interface VerificationKey {
  readonly kid: string;
  readonly alg: 'HS256' | 'EdDSA';
  readonly key: KeyObject;
}

export interface VerificationKeys {
  readonly keys: readonly VerificationKey[];
  /** Only these algorithms are accepted: those present in the set. */
  readonly algorithms: readonly ('HS256' | 'EdDSA')[];
}

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
 * Loads X_SESSION_KEYS: a JWK set as JSON text, or the path of a file holding one. Private
 * parts (`d`) are dropped: verifying needs only the public key. Messages never show key
 * material.
 *
 * @throws SettingError naming X_SESSION_KEYS.
 */
export function loadVerificationKeys(value: string | undefined): VerificationKeys {
  const text = value?.trim() ?? '';
  const fail = (what: string): never => {
    throw new SettingError('X_SESSION_KEYS', what);
  };
  if (text === '') fail("required: the gateway's JWK set (JSON) or the path of a file holding it");
  let json = text;
  let origin = '';
  if (!text.startsWith('{')) {
    if (text.startsWith('[') || text.startsWith('-----BEGIN') || (text.length >= 32 && /^[A-Za-z0-9+/=_-]+$/.test(text) && !text.startsWith('/'))) {
      fail('must be a JWK set, {"keys":[...]}, or the path of a file holding one (the value is not shown)');
    }
    const file = resolve(text);
    origin = ` (file ${JSON.stringify(file)})`;
    try {
      json = readFileSync(file, 'utf8').replace(/^\uFEFF/, '');
    } catch (err) {
      fail(`names the file ${JSON.stringify(file)}, which cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
  }
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    // V8's message may quote the text, i.e. a secret: say only that it is not JSON
    fail(`${origin} is not valid JSON; it must be a JWK set, {"keys":[...]}`.trimStart());
  }
  const keysMember = isObject(doc) ? doc.keys : undefined;
  if (!Array.isArray(keysMember) || keysMember.length === 0) fail(`${origin} must be a JWK set with at least one key, {"keys":[...]}`.trimStart());

  const keys: VerificationKey[] = [];
  const kids = new Set<string>();
  (keysMember as unknown[]).forEach((jwk, i) => {
    const at = `keys[${i}]${origin}`;
    if (!isObject(jwk)) return fail(`${at} must be a JWK object`);
    const { kid, kty, alg } = jwk;
    if (typeof kid !== 'string' || kid === '') return fail(`${at} has no "kid"`);
    if (kids.has(kid)) return fail(`${at}: kid ${JSON.stringify(kid)} is used twice`);
    kids.add(kid);
    if (jwk.use !== undefined && jwk.use !== 'sig') fail(`${at}: "use" must be "sig"`);
    if (kty === 'oct') {
      if (alg !== undefined && alg !== 'HS256') fail(`${at}: only HS256 is supported for kty "oct"`);
      const k = base64url(jwk.k);
      if (!k || k.length < MIN_HS256_SECRET_BYTES) fail(`${at}: "k" must be base64url of at least ${MIN_HS256_SECRET_BYTES} bytes`);
      keys.push(Object.freeze({ kid, alg: 'HS256', key: createSecretKey(k!) }));
    } else if (kty === 'OKP' && jwk.crv === 'Ed25519') {
      if (alg !== undefined && alg !== 'EdDSA') fail(`${at}: only EdDSA is supported for Ed25519`);
      const x = base64url(jwk.x);
      if (!x || x.length !== ED25519_KEY_BYTES) fail(`${at}: "x" must be base64url of ${ED25519_KEY_BYTES} bytes`);
      keys.push(Object.freeze({ kid, alg: 'EdDSA', key: createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x as string }, format: 'jwk' }) }));
    } else {
      fail(`${at}: unsupported key type; use "oct" (HS256) or "OKP" with crv "Ed25519" (EdDSA)`);
    }
  });
  const algorithms = [...new Set(keys.map((k) => k.alg))];
  return Object.freeze({ keys: Object.freeze(keys), algorithms: Object.freeze(algorithms) });
}

/**
 * The key a token from the gateway names (by `alg` and `kid`; without a `kid`, the only key of
 * that `alg`). Throws when there is none.
 */
export function verificationKeyFor(keys: VerificationKeys, token: string): VerificationKey {
  const header = decodeProtectedHeader(token);
  const candidates = keys.keys.filter((k) => k.alg === header.alg && (header.kid === undefined || k.kid === header.kid));
  const key = header.kid === undefined ? (candidates.length === 1 ? candidates[0] : undefined) : candidates[0];
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

function base64url(v: unknown): Buffer | null {
  if (typeof v !== 'string' || !BASE64URL_RE.test(v) || v.length % 4 === 1) return null;
  return Buffer.from(v, 'base64url');
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
