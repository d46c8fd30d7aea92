import type { IncomingHttpHeaders } from 'node:http';
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
export const REQUEST_HOP_BY_HOP: ReadonlySet<string> = new Set(['expect', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'http2-settings']);

// on a plain request, also Connection itself and the framing, which the upstream client writes anew
const PLAIN_DROPPED: ReadonlySet<string> = new Set([...REQUEST_HOP_BY_HOP, 'connection', 'transfer-encoding']);

/**
 * The request headers never forwarded on a plain (not upgraded) request: the hop-by-hop
 * ones, Connection, Transfer-Encoding, and every header the client's Connection lists
 * (RFC 9110 §7.6.1).
 */
export function plainRequestDropped(headers: IncomingHttpHeaders): ReadonlySet<string> {
  const listed = connectionListed(headers.connection);
  if (listed === null || listed === KEEP_ALIVE_ONLY || listed === CLOSE_ONLY) return PLAIN_DROPPED;
  const out = new Set(PLAIN_DROPPED);
  for (const name of listed) out.add(name);
  return out;
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
 * The headers an upstream receives, as a new object: the client's, less the ones the gateway
 * owns (in any spelling) and the names in `drop` (lower case, as Node delivers them), plus
 * the gateway's own. Runs after the client's Connection header and the headers it lists
 * were removed, so a client cannot strip what is set here.
 *
 * A new object rather than deletes on the client's: a deleted property turns a V8 object
 * into a slow dictionary, which every later pass over the headers (the proxy's copy, the
 * HTTP client's validation) then pays for.
 */
export function upstreamRequestHeaders(headers: IncomingHttpHeaders, ctx: ForwardContext, drop?: ReadonlySet<string>): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  const names = Object.keys(headers);
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    // the gateway speaks for the client: its own view replaces whatever the client claimed
    if (isOwnedHeader(name) || drop?.has(name)) continue;
    if (name === 'cookie') {
      if (ctx.cookie !== null) out.cookie = ctx.cookie;
      continue;
    }
    if (name === 'authorization' && ctx.dropAuthorization) continue;
    out[name] = headers[name];
  }
  if (ctx.cookie !== null) out.cookie = ctx.cookie;
  out['x-forwarded-for'] = ctx.forwardedFor;
  out['x-forwarded-proto'] = ctx.forwardedProto;
  if (ctx.forwardedHost) out['x-forwarded-host'] = ctx.forwardedHost;
  if (ctx.xSession !== null) out[X_SESSION_HEADER] = ctx.xSession;
  return out;
}

/**
 * The response headers a client receives: only the auth route may set the session cookie;
 * from any other upstream a Set-Cookie that a browser would send back under the session
 * cookie's name (nameless and padded forms included) is dropped.
 */
export function clientResponseHeaders(headers: IncomingHttpHeaders, mayIssueSessionCookie: boolean, cookieName: string): IncomingHttpHeaders {
  // hop-by-hop headers describe the upstream connection, not ours (RFC 9110 §7.6.1)
  const listed = connectionListed(headers.connection);
  const out: IncomingHttpHeaders = {};
  // a new object, not deletes on the upstream's: see upstreamRequestHeaders
  const names = Object.keys(headers);
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    if (HOP_BY_HOP.has(name) || (listed !== null && listed.includes(name))) continue;
    if (name === 'set-cookie' && !mayIssueSessionCookie) {
      const kept = notShadowing(headers[name], cookieName);
      if (kept.length) out[name] = kept;
      continue;
    }
    out[name] = headers[name];
  }
  return out;
}

const HOP_BY_HOP: ReadonlySet<string> = new Set(HOP_BY_HOP_HEADERS);

// what nearly every upstream sends, answered without splitting
const KEEP_ALIVE_ONLY: readonly string[] = ['keep-alive'];
const CLOSE_ONLY: readonly string[] = ['close'];

/** The header names a Connection header lists, lower case; null when there is none. */
function connectionListed(value: string | string[] | undefined): readonly string[] | null {
  if (value === undefined) return null;
  if (value === 'keep-alive') return KEEP_ALIVE_ONLY;
  if (value === 'close') return CLOSE_ONLY;
  return (Array.isArray(value) ? value.join(',') : value).split(',').map((name) => name.trim().toLowerCase());
}

/** Set-Cookie values a browser would not send back under the session cookie's name. */
function notShadowing(sc: string | string[] | undefined, cookieName: string): string[] {
  // browsers match cookie names exactly, but be strict about what could shadow ours
  const ours = cookieName.toLowerCase();
  return (Array.isArray(sc) ? sc : [String(sc)]).filter((c) => cookieNameAsSent(c).toLowerCase() !== ours);
}
