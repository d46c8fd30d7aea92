import { API_KEY_PREFIX } from '@sessiongate/session';

// The Authorization header, read the way the session cookie is: what credential it carries,
// if any. Only the Bearer scheme (RFC 6750) is ours; the value is never logged.

/** What an Authorization header carries. */
export type BearerCredential =
  | { readonly kind: 'none' }
  | { readonly kind: 'malformed'; readonly reason: string }
  | { readonly kind: 'api_key'; readonly token: string }
  | { readonly kind: 'jwt'; readonly token: string };

/** Longest Authorization header looked at; an API key is 64 characters, an IdP token a few KiB. */
export const MAX_AUTHORIZATION_BYTES = 8192;

const NONE: BearerCredential = Object.freeze({ kind: 'none' });
// RFC 6750 §2.1: "Bearer" 1*SP b64token (the scheme is case-insensitive, RFC 9110 §11.1)
const BEARER = /^bearer +([A-Za-z0-9\-._~+/]+=*)$/i;
const JWS_COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/** The credential of an Authorization header (or of several: refused as malformed). */
export function readBearer(header: string | string[] | undefined): BearerCredential {
  if (header === undefined) return NONE;
  if (typeof header !== 'string') return { kind: 'malformed', reason: 'more than one Authorization header' };
  if (header.length > MAX_AUTHORIZATION_BYTES) return { kind: 'malformed', reason: 'Authorization header too long' };
  const m = BEARER.exec(header);
  if (!m) return { kind: 'malformed', reason: 'not a Bearer credential' };
  const token = m[1]!;
  if (token.startsWith(API_KEY_PREFIX)) return { kind: 'api_key', token };
  if (JWS_COMPACT.test(token)) return { kind: 'jwt', token };
  return { kind: 'malformed', reason: 'neither an API key nor a JWT' };
}

/** Whether an Authorization header holds one of our API keys (stripped on every route). */
export function carriesApiKey(header: string | string[] | undefined): boolean {
  if (header === undefined) return false;
  return (typeof header === 'string' ? [header] : header).some((h) => h.toLowerCase().includes(API_KEY_PREFIX));
}
