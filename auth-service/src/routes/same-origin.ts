import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyReply, FastifyRequest, preValidationAsyncHookHandler } from 'fastify';
import { CrossSiteRequest } from '../errors.js';
import { browserForm, sendLoginPage } from './login-page.js';
import type { AuthRouteOptions } from './options.js';

// Login and logout refuse posts from other sites themselves, whatever the gateway in front
// did: a forged login signs the victim's browser in to the attacker's account (what the
// victim then types or uploads is the attacker's to read), a forged logout is a nuisance.
// The attacker is the page, not the client: a browser states where a request comes from
// (Origin, Sec-Fetch-Site) and a page cannot change that, so Host and X-Forwarded-Host may be
// compared with it as sent. A client that states nothing (curl, a service) is no browser.

function originOf(value: string): URL | null {
  try {
    const u = new URL(value);
    return u.origin === 'null' ? null : u;
  } catch {
    return null;
  }
}

/** The hosts (`host[:port]`) this request was addressed to: Host, and X-Forwarded-Host. */
function requestHosts(headers: IncomingHttpHeaders, scheme: string): Set<string> {
  const named = [headers.host, ...[headers['x-forwarded-host'] ?? []].flat().flatMap((h) => h.split(','))];
  const hosts = new Set<string>();
  for (const h of named) {
    if (!h?.trim()) continue;
    try {
      // parsed under the origin's scheme, so that `example.com:443` matches https://example.com
      hosts.add(new URL(`${scheme}//${h.trim()}`).host);
    } catch {
      // not a host: matches nothing
    }
  }
  return hosts;
}

/**
 * Null when a login or logout may proceed, else why not. Passes: `Sec-Fetch-Site:
 * same-origin`; an Origin that is one of `allowedOrigins` or names the host the request was
 * addressed to; no Origin and no cross-site Sec-Fetch-Site.
 */
export function crossSiteReason(headers: IncomingHttpHeaders, allowedOrigins: readonly string[]): string | null {
  const site = headers['sec-fetch-site'];
  if (site === 'same-origin') return null;
  const origin = headers.origin;
  if (typeof origin === 'string') {
    const u = originOf(origin);
    if (!u) return 'The request comes from an opaque origin';
    if (allowedOrigins.includes(u.origin.toLowerCase())) return null;
    if (requestHosts(headers, u.protocol).has(u.host)) return null;
    return 'The request comes from another site';
  }
  if (site === 'cross-site' || site === 'same-site') return 'The browser says the request comes from another site';
  return null;
}

/**
 * A hook refusing cross-site posts with 403: a browser's form gets the sign-in page saying
 * so, any other client the JSON error `csrf_rejected`.
 */
export function sameOriginOnly(opts: AuthRouteOptions): preValidationAsyncHookHandler {
  return async function sameOrigin(request: FastifyRequest, reply: FastifyReply) {
    const why = crossSiteReason(request.headers, opts.allowedOrigins);
    if (!why) return;
    request.log.warn({ event: 'cross_site_refused', path: request.url.split('?')[0], reason: why }, 'cross-site request refused');
    if (browserForm(request)) return sendLoginPage(reply, 403, opts, { error: 'cross_site', next: null });
    throw new CrossSiteRequest(why);
  };
}
