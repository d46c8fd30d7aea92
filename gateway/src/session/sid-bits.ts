const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/**
 * The first `chars` base64url characters of a sid as a number (8 chars: 48 bits, exact): a
 * small key for maps that hold many sessions, where a string each would cost more.
 */
export function sidBits(sid: string, chars: number): number {
  let n = 0;
  for (let i = 0; i < chars; i++) n = n * 64 + BASE64URL.indexOf(sid[i]!);
  return n;
}

/**
 * A sid in a string of its own, for what is kept as long as its session is cached. A sid
 * cut from the base64url of a hash is a slice of it (V8 slices strings of 13 characters or
 * more), and a slice keeps the whole 43-character hash alive: about 64 bytes more for every
 * cached session. A sid is base64url, so one byte per character copies it exactly.
 */
export function ownSid(sid: string): string {
  return Buffer.from(sid, 'latin1').toString('latin1');
}
