import type { IncomingHttpHeaders } from 'node:http';

// What a proxy in front of the gateway says about the request it is holding: the method,
// the request target and the host. Each proxy says it its own way (docs/forward-auth.md);
// a proxy sets only its own fields and passes the client's other headers on, so a report
// that mixes two ways is a client adding fields of another proxy: refused, never guessed.

/** The endpoint's path. Envoy asks for the original path appended to it. */
export const FORWARD_AUTH_PATH = '/_sessiongate/authz';

/** Whether a raw request target is the endpoint's: the path exactly, then nothing, `?…` or (Envoy) `/…`. */
export function isEndpointTarget(target: string | undefined): boolean {
  if (target === undefined || !target.startsWith(FORWARD_AUTH_PATH)) return false;
  if (target.length === FORWARD_AUTH_PATH.length) return true;
  const next = target.charCodeAt(FORWARD_AUTH_PATH.length);
  return next === 0x3f || next === 0x2f; // '?' or '/'
}

/**
 * Which proxy's way: `nginx` (X-Original-URI), `ingress-nginx` (X-Original-URL, absolute),
 * `forwarded` (Traefik and Caddy: X-Forwarded-Uri) or `envoy` (the path after the endpoint's).
 */
export type ProxyStyle = 'nginx' | 'ingress-nginx' | 'forwarded' | 'envoy';

export type Report =
  | { readonly ok: true; readonly style: ProxyStyle; readonly method: string; readonly target: string; readonly host: string | undefined }
  | { readonly ok: false; readonly reason: string };

// RFC 9110 §5.6.2 token
const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const ABSOLUTE_URL = /^https?:\/\/([^/?#]*)([^#]*)$/i;

function field(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

function refused(reason: string): Report {
  return { ok: false, reason };
}

/**
 * Reads the proxy's report from the endpoint request's own target, method and headers.
 * Exactly one way of reporting the URI, and the method in that way's field (the request's
 * own method for Envoy); anything else is refused.
 */
export function readReport(target: string, ownMethod: string, headers: IncomingHttpHeaders): Report {
  const suffix = target.slice(FORWARD_AUTH_PATH.length);
  const envoyPath = suffix.startsWith('/') ? suffix : undefined;
  const originalUri = field(headers, 'x-original-uri');
  const originalUrl = field(headers, 'x-original-url');
  const forwardedUri = field(headers, 'x-forwarded-uri');
  const originalMethod = field(headers, 'x-original-method');
  const forwardedMethod = field(headers, 'x-forwarded-method');

  let style: ProxyStyle;
  let uri: string;
  let method: string | undefined;
  let host: string | undefined;
  if (originalUrl !== undefined) {
    const m = ABSOLUTE_URL.exec(originalUrl);
    if (!m) return refused('X-Original-URL is not an absolute http(s) URL');
    style = 'ingress-nginx';
    uri = m[2] || '/';
    host = m[1];
    // through plain nginx a client could add X-Original-URL naming another host
    if (originalUri !== undefined || forwardedUri !== undefined || envoyPath !== undefined) {
      return refused('the request is described in more than one way');
    }
  } else if (originalUri !== undefined) {
    style = 'nginx';
    uri = originalUri;
    host = field(headers, 'host');
    if (forwardedUri !== undefined || envoyPath !== undefined) return refused('the request is described in more than one way');
  } else if (forwardedUri !== undefined) {
    style = 'forwarded';
    uri = forwardedUri;
    host = field(headers, 'x-forwarded-host');
    if (host === undefined) return refused('X-Forwarded-Uri comes without X-Forwarded-Host');
    if (envoyPath !== undefined) return refused('the request is described in more than one way');
  } else if (envoyPath !== undefined) {
    style = 'envoy';
    uri = envoyPath;
    host = field(headers, 'host');
  } else {
    return refused('no original URI: X-Original-URI, X-Original-URL, X-Forwarded-Uri or a path after the endpoint\'s');
  }

  if (style === 'forwarded') {
    if (originalMethod !== undefined) return refused('X-Original-Method comes with X-Forwarded-Uri');
    method = forwardedMethod;
  } else if (style === 'envoy') {
    if (originalMethod !== undefined || forwardedMethod !== undefined) return refused('a method field comes with Envoy\'s path');
    method = ownMethod;
  } else {
    if (forwardedMethod !== undefined) return refused('X-Forwarded-Method comes with X-Original-URI');
    method = originalMethod;
  }
  if (method === undefined || !METHOD.test(method)) return refused('no valid original method');
  if (!uri.startsWith('/')) return refused('the original URI does not start with "/"');
  return { ok: true, style, method, target: uri, host: host === '' ? undefined : host };
}
