import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

// Password hashes: scrypt at OWASP's parameters, stored as a PHC-style string that carries
// its own parameters and salt, so the cost can be raised later without breaking old hashes:
//   $scrypt$ln=17,r=8,p=1$<salt, base64>$<key, base64>

/** log2 of scrypt's N for new hashes: N = 2^17, OWASP's recommendation. @default 17 */
export const DEFAULT_SCRYPT_COST = 17;
/** Lowest SESSIONGATE_SCRYPT_COST accepted (tests, small machines). */
export const MIN_SCRYPT_COST = 14;
/** Highest SESSIONGATE_SCRYPT_COST accepted: 2^20 × r=8 already takes 1 GiB per hash. */
export const MAX_SCRYPT_COST = 20;
/** scrypt's block size r. @default 8 */
export const SCRYPT_BLOCK_SIZE = 8;
/** scrypt's parallelism p. @default 1 */
export const SCRYPT_PARALLELISM = 1;
export const SALT_BYTES = 16;
export const KEY_BYTES = 32;

/** Longest password accepted, in UTF-8 bytes: longer ones are refused before any hashing. */
export const MAX_PASSWORD_BYTES = 1024;
/** Shortest password `users add` / `users set-password` accept (NIST SP 800-63B). */
export const MIN_PASSWORD_LENGTH = 8;

/** Largest memory a stored hash may ask for: a hand-edited file must not take the process down. */
const MAX_HASH_MEMORY_BYTES = 1024 * 1024 * 1024;

export interface ScryptParams {
  /** log2 of N. */
  readonly ln: number;
  readonly r: number;
  readonly p: number;
}

export interface PasswordHash extends ScryptParams {
  readonly salt: Buffer;
  readonly key: Buffer;
}

const PHC_RE = /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;

/** scrypt needs about 128·N·r bytes; Node refuses anything above `maxmem` (32 MiB by default). */
function scryptOptions(p: ScryptParams): ScryptOptions {
  const N = 2 ** p.ln;
  return { N, r: p.r, p: p.p, maxmem: 128 * p.r * (N + p.p + 2) + 1024 * 1024 };
}

function derive(password: string, salt: Buffer, keylen: number, params: ScryptParams): Promise<Buffer> {
  // NFC so the same password typed on different keyboards/OSes hashes the same
  const secret = Buffer.from(password.normalize('NFC'), 'utf8');
  return new Promise((resolve, reject) => {
    scrypt(secret, salt, keylen, scryptOptions(params), (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function b64(buf: Buffer): string {
  return buf.toString('base64').replace(/=+$/, '');
}

export function formatHash(h: PasswordHash): string {
  return `$scrypt$ln=${h.ln},r=${h.r},p=${h.p}$${b64(h.salt)}$${b64(h.key)}`;
}

export function formatParams(p: ScryptParams): string {
  return `ln=${p.ln},r=${p.r},p=${p.p}`;
}

/** Parses a stored hash; returns why it is unusable as a string. */
export function parseHash(text: string): PasswordHash | string {
  const m = PHC_RE.exec(text);
  if (!m) return 'is not a scrypt hash like $scrypt$ln=17,r=8,p=1$<salt>$<key> (set it with `sessiongate users set-password`)';
  const ln = Number(m[1]);
  const r = Number(m[2]);
  const p = Number(m[3]);
  if (ln < 10 || ln > 22 || r < 1 || r > 32 || p < 1 || p > 16) return `has scrypt parameters out of range (ln=${ln}, r=${r}, p=${p})`;
  if (128 * 2 ** ln * r > MAX_HASH_MEMORY_BYTES) return `asks for more than 1 GiB of memory (ln=${ln}, r=${r})`;
  const salt = Buffer.from(m[4]!, 'base64');
  const key = Buffer.from(m[5]!, 'base64');
  if (salt.length < 16) return 'has a salt shorter than 16 bytes';
  if (key.length < 16 || key.length > 64) return 'has a derived key that is not 16 to 64 bytes';
  return { ln, r, p, salt, key };
}

export function defaultParams(cost: number = DEFAULT_SCRYPT_COST): ScryptParams {
  return { ln: cost, r: SCRYPT_BLOCK_SIZE, p: SCRYPT_PARALLELISM };
}

/** Hashes a new password with a fresh salt. */
export async function hashPassword(password: string, params: ScryptParams = defaultParams()): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, KEY_BYTES, params);
  return formatHash({ ...params, salt, key });
}

/** Compares a password with a stored hash, in constant time over the derived keys. */
export async function verifyPassword(password: string, hash: PasswordHash): Promise<boolean> {
  const key = await derive(password, hash.salt, hash.key.length, hash);
  return timingSafeEqual(key, hash.key);
}

/**
 * What unknown user names are checked against, so they cost the same scrypt work as a user
 * with these parameters. The key is random: no password matches it, and making it needs no
 * scrypt run of its own.
 */
export function dummyHash(params: ScryptParams): PasswordHash {
  return { ...params, salt: randomBytes(SALT_BYTES), key: randomBytes(KEY_BYTES) };
}

export function passwordTooLong(password: string): boolean {
  return Buffer.byteLength(password, 'utf8') > MAX_PASSWORD_BYTES;
}
