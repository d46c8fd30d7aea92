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
