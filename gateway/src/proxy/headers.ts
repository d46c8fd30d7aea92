import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import { HOP_BY_HOP_HEADERS } from '@sessiongate/service-kit';
import { CLIENT_ASSERTION_HEADER, cookieNameAsSent } from '@sessiongate/session';

/** The header that carries the signed identity to upstreams. */
export const X_SESSION_HEADER = 'x-session';

/**
 * Headers the gateway owns on upstream requests: it writes them itself (`Forwarded` is
 * replaced by the X-Forwarded-* it writes). A client's copy, in any spelling, never passes.
 * A new gateway-owned header belongs in this list.
 */
export const GATEWAY_HEADERS: readonly string[] = [X_SESSION_HEADER, CLIENT_ASSERTION_HEADER, 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded'];

/**
 * Client headers that some upstream frameworks obey to re-route a request or change its
 * method (IIS/Symfony `X-Original-URL`, Spring `X-Forwarded-Prefix`, Rails/Express method
 * overrides…). The gateway decided on the path and method it saw, so an upstream must not be
 * told a different one: these never pass.
 */
export const REROUTING_HEADERS: readonly string[] = [
  'x-original-url',
  'x-original-uri',
  'x-rewrite-url',
  'x-forwarded-uri',
  'x-forwarded-path',
  'x-forwarded-prefix',
  'x-forwarded-port',
  'x-forwarded-server',
  'x-forwarded-scheme',
  'x-forwarded-ssl',
  'x-url-scheme',
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  'x-real-ip',
  'client-ip',
  'true-client-ip',
];

// every name above, lower-case with "-": the one form the request's names are folded to
const OWNED = new Set([...GATEWAY_HEADERS, ...REROUTING_HEADERS]);
// first characters of those names: most request headers fail this test and cost nothing more
const OWNED_FIRST = new Uint8Array(128);
for (const name of OWNED) OWNED_FIRST[name.charCodeAt(0)] = 1;
const FOLDABLE = /[_.A-Z]/;

/**
 * Whether a request header is one the gateway owns or strips, in any spelling an upstream
 * might fold into it: case, and `_` or `.` for `-` (CGI, WSGI, PHP and Rack turn
 * `X_Forwarded_For` and `X-Forwarded-For` into the same `HTTP_X_FORWARDED_FOR`). Such a
 * header from a client is never forwarded.
 */
function isOwnedHeader(name: string): boolean {
  const c = name.charCodeAt(0) | 0x20; // ASCII lower case
  if (c >= 128 || OWNED_FIRST[c] !== 1) return false;
  if (OWNED.has(name)) return true;
  return FOLDABLE.test(name) && OWNED.has(name.toLowerCase().replace(/[_.]/g, '-'));
}

/**
 * Request headers about the client's connection that never pass on a plain request, beyond
 * Connection and the headers it lists (which the proxy removes): `Expect` (the gateway's
 * server has already answered `100 Continue`), `Keep-Alive`, `Proxy-Connection`, `TE`,
 * `Trailer`, and an `Upgrade` that came without `Connection: upgrade` (a real upgrade never
 * takes this path). The upstream client refuses most of them: forwarded, they made a 502.
 */
const REQUEST_HOP_BY_HOP = ['expect', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'http2-settings'];

/** Removes the connection-level request headers of a plain (not upgraded) request. */
export function stripRequestHopByHop(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  for (const name of REQUEST_HOP_BY_HOP) delete headers[name];
  return headers;
}

export interface ForwardContext {
  /** The Cookie header without the session cookie, or null. */
  cookie: string | null;
  /** The signed X-Session for this request, or null. */
  xSession: string | null;
  /** Client address, scheme and host as the gateway resolved them. */
  forwardedFor: string;
  forwardedProto: string;
  forwardedHost: string | undefined;
  /** The Authorization header carried a credential for the gateway: never forwarded. */
  dropAuthorization?: boolean;
}

/**
 * The headers an upstream receives. Runs after the client's Connection header and the
 * headers it lists were removed, so a client cannot strip what is set here.
 */
export function upstreamRequestHeaders(headers: IncomingHttpHeaders, ctx: ForwardContext): IncomingHttpHeaders {
  // the gateway speaks for the client: its own view replaces whatever the client claimed
  for (const name of Object.keys(headers)) {
    if (isOwnedHeader(name)) delete headers[name];
  }
  if (ctx.dropAuthorization) delete headers.authorization;
  if (ctx.cookie === null) delete headers.cookie;
  else headers.cookie = ctx.cookie;
  headers['x-forwarded-for'] = ctx.forwardedFor;
  headers['x-forwarded-proto'] = ctx.forwardedProto;
  if (ctx.forwardedHost) headers['x-forwarded-host'] = ctx.forwardedHost;
  if (ctx.xSession !== null) headers[X_SESSION_HEADER] = ctx.xSession;
  return headers;
}

/**
 * The response headers a client receives: only the auth route may set the session cookie;
 * from any other upstream a Set-Cookie that a browser would send back under the session
 * cookie's name (nameless and padded forms included) is dropped.
 */
export function clientResponseHeaders<H extends OutgoingHttpHeaders | IncomingHttpHeaders>(headers: H, mayIssueSessionCookie: boolean, cookieName: string): H {
  const h = headers as OutgoingHttpHeaders;
  // hop-by-hop headers describe the upstream connection, not ours (RFC 9110 §7.6.1)
  const listed = h.connection;
  if (typeof listed === 'string') for (const name of listed.split(',')) delete h[name.trim().toLowerCase()];
  for (const name of HOP_BY_HOP_HEADERS) delete h[name];
  if (mayIssueSessionCookie) return headers;
  const sc = h['set-cookie'];
  if (sc === undefined) return headers;
  // browsers match cookie names exactly, but be strict about what could shadow ours
  const ours = cookieName.toLowerCase();
  const list = (Array.isArray(sc) ? sc : [String(sc)]).filter((c) => cookieNameAsSent(c).toLowerCase() !== ours);
  if (list.length) h['set-cookie'] = list;
  else delete h['set-cookie'];
  return headers;
}
