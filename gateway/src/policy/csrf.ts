import type { IncomingHttpHeaders } from 'node:http';
import type { ClientAddress } from './client-address.js';

/** The gateway's own origin, as the client addressed it: the default allowed origin. */
export function allowedOriginsFor(a: ClientAddress): string[] {
  // the host is canonical (lower case) already
  return a.host ? [`${a.proto}://${a.host}`] : [];
}

function originOf(url: string): string | null {
  try {
    const u = new URL(url);
    return u.origin === 'null' ? null : u.origin.toLowerCase();
  } catch {
    return null;
  }
}

/**
 * Null when a cookie-authenticated write may proceed, else why not. Accepted: a browser
 * saying `Sec-Fetch-Site: same-origin`, or an `Origin` (without one, a `Referer`) that is one
 * of the allowed origins. Anything else, including no evidence at all, is refused.
 */
export function csrfVerdict(headers: IncomingHttpHeaders, allowed: readonly string[]): string | null {
  if (headers['sec-fetch-site'] === 'same-origin') return null;
  const origin = headers.origin;
  if (typeof origin === 'string' && origin !== 'null') {
    return allowed.includes(origin.toLowerCase()) ? null : 'The request origin is not allowed to use this session';
  }
  const referer = headers.referer;
  if (typeof referer === 'string') {
    const o = originOf(referer);
    return o && allowed.includes(o) ? null : 'The request referer is not allowed to use this session';
  }
  return 'A cross-site check failed: send Origin (browsers do) with cookie-authenticated writes';
}

/**
 * Null when a write to the auth route (login, logout) may proceed, cookie or not, else why
 * not. A forged login signs the victim's browser in to the attacker's account, so a browser
 * must show the request is same-origin, by the rules of {@link csrfVerdict}. A client that
 * sends none of Sec-Fetch-Site, Origin and Referer is no browser (curl, a service): a page
 * cannot make a browser leave them all out, so it passes.
 */
export function authWriteVerdict(headers: IncomingHttpHeaders, allowed: readonly string[]): string | null {
  if (headers['sec-fetch-site'] === undefined && headers.origin === undefined && headers.referer === undefined) return null;
  return csrfVerdict(headers, allowed);
}
