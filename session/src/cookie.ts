/** Default name of the session cookie. @default 'sid' */
export const DEFAULT_COOKIE_NAME = 'sid';

/** What the Cookie header says about the session cookie. */
export interface SessionCookie {
  /** The token when exactly one session cookie was sent. */
  readonly token: string | null;
  /** More than one session cookie: ambiguous, so never trusted. */
  readonly duplicate: boolean;
  /** The Cookie header without the session cookie (null when nothing is left). */
  readonly rest: string | null;
}

const NONE: SessionCookie = Object.freeze({ token: null, duplicate: false, rest: null });

/**
 * Finds the session cookie in a Cookie header (Node joins repeated Cookie headers with
 * "; ") and returns the header without it, so the token never travels upstream.
 */
export function readSessionCookie(header: string | string[] | undefined, name: string): SessionCookie {
  if (header === undefined) return NONE;
  const value = Array.isArray(header) ? header.join('; ') : header;
  // fast path: the name does not occur at all
  if (!value.includes(name)) return { token: null, duplicate: false, rest: value || null };
  let token: string | null = null;
  let count = 0;
  const kept: string[] = [];
  for (const part of value.split(';')) {
    const pair = part.trim();
    if (!pair) continue;
    const eq = pair.indexOf('=');
    const key = (eq < 0 ? pair : pair.slice(0, eq)).trim();
    if (key === name) {
      count++;
      let v = eq < 0 ? '' : pair.slice(eq + 1).trim();
      if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
      token = v;
    } else {
      kept.push(pair);
    }
  }
  return { token: count === 1 ? token : null, duplicate: count > 1, rest: kept.length ? kept.join('; ') : null };
}

export interface CookieAttributes {
  name: string;
  /** false only for local http. @default true */
  secure: boolean;
  /** @default '/' */
  path?: string;
  /** @default 'Lax' */
  sameSite?: 'Lax' | 'Strict';
  domain?: string;
}

/** The Set-Cookie value that hands a browser its session token (a session cookie, no Max-Age). */
export function sessionSetCookie(token: string, a: CookieAttributes): string {
  return serialize(a, token, []);
}

/** The Set-Cookie value that removes the session cookie from a browser. */
export function clearSessionSetCookie(a: CookieAttributes): string {
  return serialize(a, '', ['Max-Age=0', 'Expires=Thu, 01 Jan 1970 00:00:00 GMT']);
}

function serialize(a: CookieAttributes, value: string, extra: string[]): string {
  const parts = [`${a.name}=${value}`, `Path=${a.path ?? '/'}`, ...extra, 'HttpOnly', `SameSite=${a.sameSite ?? 'Lax'}`];
  if (a.domain) parts.push(`Domain=${a.domain}`);
  if (a.secure) parts.push('Secure');
  return parts.join('; ');
}

/**
 * The name a browser's Cookie header will carry for a Set-Cookie value, as
 * `readSessionCookie` reads that header back. Browsers (RFC 6265bis §5.6) take the pair
 * before the first ";", and a pair without "=" is a nameless cookie whose value is the whole
 * pair; a nameless cookie is sent as its bare value (§5.8.3), so `=sid=X` and `sid` come
 * back as a cookie named `sid`. Whitespace is trimmed as the reader trims it.
 */
export function cookieNameAsSent(setCookie: string): string {
  const semi = setCookie.indexOf(';');
  const pair = semi < 0 ? setCookie : setCookie.slice(0, semi);
  const eq = pair.indexOf('=');
  const name = eq < 0 ? '' : pair.slice(0, eq).trim();
  if (name !== '') return name;
  // nameless: the value is what the Cookie header will hold
  const value = (eq < 0 ? pair : pair.slice(eq + 1)).trim();
  const inner = value.indexOf('=');
  return (inner < 0 ? value : value.slice(0, inner)).trim();
}

/**
 * Checks a cookie name and its prefix rules: `__Host-` needs Secure and Path=/ and no Domain,
 * `__Secure-` needs Secure. Returns the problem, or null.
 */
export function cookieNameProblem(name: string, secure: boolean): string | null {
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) return `"${name}" is not a valid cookie name`;
  if ((name.startsWith('__Host-') || name.startsWith('__Secure-')) && !secure) {
    return `a cookie named ${name.split('-')[0]}-… requires COOKIE_SECURE=true`;
  }
  return null;
}
