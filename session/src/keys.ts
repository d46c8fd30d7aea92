import {
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  generateKeyPairSync,
  randomBytes,
  type JsonWebKey,
  type KeyObject,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import createError from '@fastify/error';

/** X_SESSION_KEYS is missing or invalid: the process refuses to start. Messages never carry key material. */
export const KeyConfigError = createError('SG_ERR_INVALID_KEYS', '%s', 500);

/** The JWS algorithms an X-Session can be signed with. */
export type SigningAlg = 'HS256' | 'EdDSA';

/** A shared HS256 secret: signs, and verifies wherever the same secret is configured. */
export interface HmacSigningKey {
  readonly kid: string;
  readonly alg: 'HS256';
  readonly secret: KeyObject;
}

/** An Ed25519 key; `privateKey` is null for a verification-only key kept for rotation. */
export interface Ed25519SigningKey {
  readonly kid: string;
  readonly alg: 'EdDSA';
  readonly publicKey: KeyObject;
  readonly privateKey: KeyObject | null;
}

/** One key of X_SESSION_KEYS. */
export type SigningKey = HmacSigningKey | Ed25519SigningKey;

/** A loaded, validated, frozen X_SESSION_KEYS. */
export interface KeySet {
  /** The first key of the set: it signs every X-Session. */
  readonly signing: SigningKey;
  /** All keys, signing key first; during a rotation the others still verify. */
  readonly keys: readonly SigningKey[];
  /** Public parts of the EdDSA keys (never an HS256 secret, never `d`), served as the JWKS. */
  readonly publicJwks: { readonly keys: readonly JsonWebKey[] };
}

/**
 * What a key set is loaded for: `sign` (the gateway) needs the first key's private part;
 * `verify` (an upstream such as the auth service) drops every private part (`d`).
 */
export type KeySetUse = 'sign' | 'verify';

/** Shortest HS256 secret accepted: RFC 7518 §3.2 wants at least the hash size, 256 bits. */
export const MIN_HS256_SECRET_BYTES = 32;

const ED25519_KEY_BYTES = 32;
const BASE64URL_RE = /^[A-Za-z0-9_-]*$/;
const GENERATE_HINT = 'create one with `sessiongate keys generate`';

/**
 * Loads X_SESSION_KEYS: a JWK set as JSON text (starts with `{`), otherwise the path of a
 * file holding one, read synchronously at boot. The one loader of the gateway's signer and
 * the auth service's verifier.
 *
 * @throws KeyConfigError (`SG_ERR_INVALID_KEYS`) naming X_SESSION_KEYS and what is wrong.
 */
export function loadKeySet(value: string | undefined, use: KeySetUse = 'sign'): KeySet {
  const text = value?.trim() ?? '';
  if (text === '') {
    throw new KeyConfigError(
      `X_SESSION_KEYS is not set: it must hold a JWK set (JSON) or the path of a file holding one; ${GENERATE_HINT}`,
    );
  }
  if (text.startsWith('{')) return parseKeySet(text, 'X_SESSION_KEYS', use);
  // Operators paste the wrong thing here; none of these may be echoed back into a log.
  if (text.startsWith('[')) {
    throw new KeyConfigError('X_SESSION_KEYS holds a JSON array: it must be a JWK set object, {"keys":[...]}');
  }
  if (text.startsWith('-----BEGIN')) {
    throw new KeyConfigError(`X_SESSION_KEYS holds a PEM key: it must be a JWK set (JSON); ${GENERATE_HINT}`);
  }
  if (looksLikeKeyMaterial(text)) {
    throw new KeyConfigError(
      'X_SESSION_KEYS is neither a JWK set (JSON starting with "{") nor the path of an existing file; ' +
        `the value looks like raw key material, so it is not shown: wrap the key in a JWK set, or ${GENERATE_HINT}`,
    );
  }

  const path = resolve(text);
  let json: string;
  try {
    json = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'does not exist'
        : code === 'EACCES' || code === 'EPERM'
          ? 'cannot be read (permission denied)'
          : code === 'EISDIR'
            ? 'is a directory'
            : `cannot be read (${code ?? 'unknown error'})`;
    throw new KeyConfigError(
      `X_SESSION_KEYS names the file ${JSON.stringify(path)}, which ${why}; it must hold a JWK set (JSON)`,
      { cause: err },
    );
  }
  // Editors and `Out-File` on Windows like to prepend a BOM.
  return parseKeySet(json.replace(/^\uFEFF/, ''), `X_SESSION_KEYS (file ${JSON.stringify(path)})`, use);
}

/**
 * Parses and validates a JWK set. `origin` names the source in every message, e.g.
 * `X_SESSION_KEYS` or `X_SESSION_KEYS (file "/etc/sessiongate/keys.json")`.
 *
 * @throws KeyConfigError (`SG_ERR_INVALID_KEYS`)
 */
export function parseKeySet(json: string, origin: string, use: KeySetUse = 'sign'): KeySet {
  const fail = (what: string): never => {
    throw new KeyConfigError(`${origin}: ${what}`);
  };

  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch (err) {
    // V8's own message may quote the text around the error, i.e. a secret: keep only where.
    fail(`is not valid JSON (${jsonErrorPlace(json, err)}); it must be a JWK set, {"keys":[...]}`);
  }
  if (!isObject(doc)) return fail('must be a JWK set object, {"keys":[...]}');
  if (!('keys' in doc)) {
    return fail(
      'kty' in doc
        ? 'is a single JWK, not a JWK set: wrap it as {"keys":[ <the key> ]}'
        : 'has no "keys" member: it must be a JWK set, {"keys":[...]}',
    );
  }
  if (!Array.isArray(doc.keys)) return fail('"keys" must be an array of JWKs');
  if (doc.keys.length === 0) return fail(`"keys" is empty: at least one signing key is required; ${GENERATE_HINT}`);

  const keys: SigningKey[] = [];
  const publicJwks: JsonWebKey[] = [];
  const seen = new Map<string, number>();
  doc.keys.forEach((jwk: unknown, i: number) => {
    const key = parseKey(jwk, `keys[${i}]`, fail, use);
    const first = seen.get(key.kid);
    if (first !== undefined) fail(`keys[${i}]: kid ${JSON.stringify(key.kid)} is already used by keys[${first}]; kids must be unique`);
    seen.set(key.kid, i);
    keys.push(key);
    if (key.alg === 'EdDSA') publicJwks.push(Object.freeze(publicJwk(key)));
  });

  const signing = keys[0]!;
  if (use === 'sign' && signing.alg === 'EdDSA' && signing.privateKey === null) {
    fail(
      `keys[0] (kid ${JSON.stringify(signing.kid)}) has no "d": the first key signs, so it needs its private part; ` +
        'verification-only keys may only follow it',
    );
  }
  return Object.freeze({
    signing,
    keys: Object.freeze(keys),
    publicJwks: Object.freeze({ keys: Object.freeze(publicJwks) }),
  });
}

/** One key an X-Session may be signed with, as a verifier uses it: the public part for EdDSA, the secret for HS256. */
export interface VerificationKey {
  readonly kid: string;
  readonly alg: SigningAlg;
  readonly key: KeyObject;
}

export interface VerificationKeys {
  readonly keys: readonly VerificationKey[];
  /** Only these algorithms are accepted: those present in the set. */
  readonly algorithms: readonly SigningAlg[];
}

/** What verifying X-Session headers needs of a key set: every key, never a private part. */
export function verificationKeys(set: KeySet): VerificationKeys {
  const keys = set.keys.map((k): VerificationKey => Object.freeze({ kid: k.kid, alg: k.alg, key: k.alg === 'HS256' ? k.secret : k.publicKey }));
  return Object.freeze({ keys: Object.freeze(keys), algorithms: Object.freeze([...new Set(keys.map((k) => k.alg))]) });
}

/**
 * The key a token's protected header names (by `alg` and `kid`; without a `kid`, the only key
 * of that `alg`), or undefined.
 */
export function verificationKeyFor(keys: VerificationKeys, header: { alg?: unknown; kid?: unknown }): VerificationKey | undefined {
  const candidates = keys.keys.filter((k) => k.alg === header.alg && (header.kid === undefined || k.kid === header.kid));
  return header.kid === undefined ? (candidates.length === 1 ? candidates[0] : undefined) : candidates[0];
}

/**
 * A fresh key as a one-key JWK set: what `sessiongate keys generate` prints. The default
 * kid is the date plus a random suffix, so operators can tell keys apart and see their age.
 */
export function generateKeySet(alg: SigningAlg, kid: string = defaultKid()): { keys: JsonWebKey[] } {
  if (kid === '') throw new KeyConfigError('kid must not be empty');
  if (alg === 'HS256') {
    return { keys: [{ kty: 'oct', k: randomBytes(MIN_HS256_SECRET_BYTES).toString('base64url'), kid, alg, use: 'sig' }] };
  }
  if (alg === 'EdDSA') {
    const { x, d } = generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' });
    return { keys: [{ kty: 'OKP', crv: 'Ed25519', x, d, kid, alg, use: 'sig' }] };
  }
  throw new KeyConfigError(`unknown alg ${JSON.stringify(alg)}: use EdDSA or HS256`);
}

function parseKey(jwk: unknown, where: string, fail: (what: string) => never, purpose: KeySetUse): SigningKey {
  if (!isObject(jwk)) return fail(`${where} must be a JWK object`);
  const { kid, kty, alg, use } = jwk;
  if (typeof kid !== 'string' || kid === '') {
    return fail(`${where} has no "kid": every key needs a unique, non-empty string kid (it names the key in the JWS header)`);
  }
  const at = `${where} (kid ${JSON.stringify(kid)})`;
  if (use !== undefined && use !== 'sig') fail(`${at}: "use" must be "sig" when present`);

  if (kty === 'oct') {
    if (alg !== undefined && alg !== 'HS256') fail(`${at}: alg ${JSON.stringify(alg)} is not supported for kty "oct"; only HS256 is`);
    const secret = base64urlMember(jwk, 'k', at, fail);
    if (secret.length < MIN_HS256_SECRET_BYTES) {
      fail(
        `${at}: the HS256 secret "k" is ${secret.length} bytes; at least ${MIN_HS256_SECRET_BYTES} random bytes are required ` +
          '(create one with `sessiongate keys generate --alg HS256`)',
      );
    }
    return Object.freeze({ kid, alg: 'HS256', secret: createSecretKey(secret) });
  }

  if (kty === 'OKP') {
    if (jwk.crv !== 'Ed25519') fail(`${at}: crv ${JSON.stringify(jwk.crv)} is not supported for kty "OKP"; only Ed25519 is`);
    if (alg !== undefined && alg !== 'EdDSA') fail(`${at}: alg ${JSON.stringify(alg)} is not supported for Ed25519; only EdDSA is`);
    const x = base64urlMember(jwk, 'x', at, fail);
    if (x.length !== ED25519_KEY_BYTES) fail(`${at}: "x" must be ${ED25519_KEY_BYTES} bytes, it is ${x.length}`);
    const publicKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x as string }, format: 'jwk' });
    if (jwk.d === undefined || purpose === 'verify') return Object.freeze({ kid, alg: 'EdDSA', publicKey, privateKey: null });

    const d = base64urlMember(jwk, 'd', at, fail);
    if (d.length !== ED25519_KEY_BYTES) fail(`${at}: "d" must be ${ED25519_KEY_BYTES} bytes`);
    const privateKey = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', x: jwk.x as string, d: jwk.d as string }, format: 'jwk' });
    // node:crypto derives the public key from d and ignores x: a mismatch would publish a
    // JWKS that verifies none of our signatures.
    if (createPublicKey(privateKey).export({ format: 'jwk' }).x !== jwk.x) {
      fail(`${at}: "d" and "x" are not the same key pair`);
    }
    return Object.freeze({ kid, alg: 'EdDSA', publicKey, privateKey });
  }

  return fail(
    `${at}: kty ${kty === undefined ? 'is missing' : `${JSON.stringify(kty)} is not supported`}; ` +
      'use "oct" (HS256) or "OKP" with crv "Ed25519" (EdDSA)',
  );
}

function publicJwk(key: Ed25519SigningKey): JsonWebKey {
  const { x } = key.publicKey.export({ format: 'jwk' });
  return { kid: key.kid, alg: 'EdDSA', use: 'sig', kty: 'OKP', crv: 'Ed25519', x };
}

function base64urlMember(jwk: Record<string, unknown>, name: string, at: string, fail: (what: string) => never): Buffer {
  const value = jwk[name];
  if (value === undefined) return fail(`${at}: "${name}" is missing`);
  // Strict: Buffer.from() would silently skip stray characters (and standard base64).
  if (typeof value !== 'string' || !BASE64URL_RE.test(value) || value.length % 4 === 1) {
    return fail(`${at}: "${name}" must be base64url without padding`);
  }
  return Buffer.from(value, 'base64url');
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function jsonErrorPlace(json: string, err: unknown): string {
  const message = err instanceof Error ? err.message : '';
  const match = /position (\d+)/.exec(message);
  if (!match) return /end of JSON/.test(message) ? 'it ends too early' : 'syntax error';
  const before = json.slice(0, Number(match[1]));
  const line = before.split('\n').length;
  const column = before.length - before.lastIndexOf('\n');
  return `syntax error at line ${line}, column ${column}`;
}

// A long run of base64 characters with no dot and no leading `/` is far likelier a
// pasted secret than a file name.
function looksLikeKeyMaterial(value: string): boolean {
  return value.length >= 32 && /^[A-Za-z0-9+/=_-]+$/.test(value) && !value.startsWith('/') && !value.includes('.');
}

function defaultKid(): string {
  return `${new Date().toISOString().slice(0, 10)}-${randomBytes(4).toString('hex')}`;
}
