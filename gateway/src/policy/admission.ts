import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';
import {
  AmbiguousCredentials,
  BadRequest,
  CsrfRejected,
  Forbidden,
  HeadersTooLarge,
  InvalidCredentials,
  MethodNotAllowed,
  MethodOverrideRefused,
  NotFound,
  PayloadTooLarge,
  SessionStoreUnavailable,
  TooManyRequests,
  Unauthenticated,
} from '../errors.js';
import { readSessionCookie } from '@sessiongate/session';
import { canonicalize } from '../routes/canonical-path.js';
import { RouteTable, hostName, ruleFor } from '../routes/match.js';
import type { MethodRule, ProxiedRoute, Route, RouteSet } from '../routes/types.js';
import { apiKeyRef } from '@sessiongate/session';
import { carriesApiKey, readBearer, type BearerCredential } from '../session/authorization.js';
import type { Lookup, LookupOutcome, LookupSource, ResolvedSession } from '../session/resolver.js';
import type { BearerThrottle } from './bearer-throttle.js';
import { ClientAddressResolver, type ClientAddress } from './client-address.js';
import { allowedOriginsFor, authWriteVerdict, csrfVerdict } from './csrf.js';
import { decide, type Decision } from './decide.js';
import { assertCheckableBody, hasMethodOverrideParam } from './method-override.js';

/** What the gate decided for one request, for the proxy step. */
export interface GateState<R extends Route = ProxiedRoute> {
  readonly route: R;
  readonly rule: MethodRule;
  /** Canonical path: what the policy decided on and what is forwarded. */
  readonly path: string;
  /** `?…` exactly as received, or ''. */
  readonly query: string;
  readonly session: ResolvedSession | null;
  /** Cookie header without the session cookie. */
  readonly cookie: string | null;
  /** Client address, scheme and (valid, canonical) host. */
  readonly client: ClientAddress;
  /** The Authorization header held a credential for the gateway: it is not forwarded. */
  readonly dropAuthorization: boolean;
}

/** Checks an IdP access token (routes with `bearer_jwt`); never throws. */
export type JwtResolver = (token: string) => Promise<Lookup>;

/** What admission reports as it decides (the gateway's metrics). */
export interface AdmissionObserver {
  lookup(outcome: LookupOutcome, source: LookupSource): void;
  decision(route: string, decision: Decision): void;
}

export interface AdmissionOptions {
  routes: RouteSet;
  /** Resolves a session cookie's token (the session resolver, traced while tracing is on). */
  resolve(token: string | null): Promise<Lookup>;
  cookieName: string;
  /** The route whose upstream may set the session cookie (its writes get the login CSRF check). */
  authRoute: string;
  /** Origins allowed to send cookie-authenticated writes; empty: the gateway's own origin. */
  allowedOrigins: readonly string[];
  /** CIDRs whose X-Forwarded-* / Forwarded headers are believed. */
  trustedProxies: readonly string[];
  maxCookieBytes: number;
  metrics?: AdmissionObserver;
  /** Resolves an API key (routes with `api_key`); without it they refuse every key. */
  resolveApiKey?: (key: string) => Promise<Lookup>;
  /** Verifies IdP access tokens; without it, `bearer_jwt` routes refuse every JWT. */
  jwt?: JwtResolver;
  /** Counts failed bearer credentials per client address; without it nothing is throttled. */
  throttle?: BearerThrottle;
}

/** Routing, session and policy for one request; the routes can be swapped while it runs. */
export interface Admission {
  /** Routes in force. */
  readonly routes: RouteSet;
  /** Swaps the routes atomically; requests already past routing finish on the old ones. */
  setRoutes(routes: RouteSet): void;
  /**
   * The canonical path, its route and rule, the session, the decision. Throws the coded
   * error to answer with. Shared by HTTP requests and WebSocket upgrades (`upgrade`: a
   * browser opens a WebSocket to any site with the user's cookies, so an upgrade gets the
   * same origin check as a write).
   */
  admit(
    raw: IncomingMessage,
    log: FastifyBaseLogger,
    matched?: (route: Route) => void,
    upgrade?: boolean,
    identified?: (session: ResolvedSession) => void,
  ): Promise<GateState>;
  /**
   * The same decision for a request another proxy describes (forward auth): no body travels,
   * and a route without an upstream matches too. The caller has canonicalized the path and
   * resolved `client` (host included) from the proxy's report.
   */
  check(described: DescribedRequest, log: FastifyBaseLogger, matched?: (route: Route) => void): Promise<GateState<Route>>;
}

/** A request as a proxy in front of the gateway reports it. */
export interface DescribedRequest {
  readonly method: string;
  /** Canonical path. */
  readonly path: string;
  /** `?…` as reported, or ''. */
  readonly query: string;
  /** The request's headers (cookie, origin, sec-fetch-site…). */
  readonly headers: IncomingHttpHeaders;
  readonly client: ClientAddress;
}

const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const INVALID_HOST = 'The Host header (or a trusted proxy\'s X-Forwarded-Host or Forwarded host) is not a valid host[:port]';

function lookupRoles(l: Lookup): readonly string[] | null {
  return l.outcome === 'valid' ? l.session.record.roles : null;
}

export function createAdmission(opts: AdmissionOptions): Admission {
  const { resolve, metrics, cookieName, authRoute, maxCookieBytes } = opts;
  const clientAddress = new ClientAddressResolver(opts.trustedProxies);
  const { throttle, jwt, resolveApiKey } = opts;

  /** The lookup of a bearer credential; refusals are counted against the client address. */
  async function resolveBearer(bearer: BearerCredential, route: Route, client: ClientAddress, log: FastifyBaseLogger): Promise<Lookup> {
    const accepts = route.credentials;
    const retryAfter = client.ip && throttle ? throttle.retryAfter(client.ip) : 0;
    if (retryAfter > 0) {
      log.info({ route: route.name, ip: client.ip, retryAfter }, 'bearer credentials throttled: 429');
      throw new TooManyRequests();
    }
    let lookup: Lookup;
    if (bearer.kind === 'api_key' && accepts.includes('api_key') && resolveApiKey) lookup = await resolveApiKey(bearer.token);
    else if (bearer.kind === 'jwt' && accepts.includes('bearer_jwt') && jwt) lookup = await jwt(bearer.token);
    else if (bearer.kind === 'malformed') lookup = { outcome: 'malformed', source: 'none', reason: bearer.reason };
    else lookup = { outcome: 'malformed', source: 'none', reason: `this route does not accept ${bearer.kind === 'jwt' ? 'bearer JWTs' : 'API keys'}` };
    metrics?.lookup(lookup.outcome, lookup.source);
    if (lookup.outcome === 'valid' || lookup.outcome === 'store_error') return lookup;
    // the credential itself is never logged: an API key's id is its public part
    const keyId = bearer.kind === 'api_key' ? apiKeyRef(bearer.token)?.sid : undefined;
    log.info({ route: route.name, credential: bearer.kind, keyId, outcome: lookup.outcome, reason: lookup.reason }, 'bearer credential refused: 401');
    if (client.ip && throttle) await throttle.fail(client.ip).catch((err: unknown) => log.warn({ err }, 'could not count a failed bearer credential'));
    throw new InvalidCredentials();
  }

  const configuredOrigins = opts.allowedOrigins;
  let routes = opts.routes;
  let table = new RouteTable(routes.routes);

  function admit(
    raw: IncomingMessage,
    log: FastifyBaseLogger,
    matched?: (route: Route) => void,
    upgrade = false,
    identified?: (session: ResolvedSession) => void,
  ): Promise<GateState> {
    const c = canonicalize(raw.url ?? '');
    if (!c.ok) return Promise.reject(new BadRequest(c.reason));
    const client = clientAddress.resolve(raw);
    const request = { method: raw.method ?? 'GET', path: c.path, query: c.query, headers: raw.headers, client };
    return decideOn(request, log, matched, upgrade, identified, false) as Promise<GateState>;
  }

  function check(described: DescribedRequest, log: FastifyBaseLogger, matched?: (route: Route) => void): Promise<GateState<Route>> {
    return decideOn(described, log, matched, false, undefined, true);
  }

  async function decideOn(
    request: DescribedRequest,
    log: FastifyBaseLogger,
    matched: ((route: Route) => void) | undefined,
    upgrade: boolean,
    identified: ((session: ResolvedSession) => void) | undefined,
    forwardAuth: boolean,
  ): Promise<GateState<Route>> {
    const { method, path, query, headers, client } = request;
    // RFC 9112 §3.2: an invalid Host is a 400; it would travel on as X-Forwarded-Host
    if (client.host === null) throw new BadRequest(INVALID_HOST);
    const route = table.match(path, hostName(client.host));
    // a forward-auth-only route: the gateway itself has nowhere to send the request
    if (!route || (!forwardAuth && route.upstream === null)) throw new NotFound();
    matched?.(route);
    const rule = ruleFor(route, method);
    if (!rule) throw new MethodNotAllowed(method);
    if (route.methodOverride === 'refuse') {
      if (hasMethodOverrideParam(query.slice(1))) throw new MethodOverrideRefused('query');
      // forward auth: the body goes from the proxy to the app and is never seen here
      if (!forwardAuth) assertCheckableBody(method, headers);
    }
    const cookieHeader = headers.cookie;
    if (cookieHeader !== undefined && cookieHeader.length > maxCookieBytes) {
      throw new HeadersTooLarge(`The Cookie header exceeds ${maxCookieBytes} bytes`);
    }
    const cookie = readSessionCookie(cookieHeader, cookieName);
    const accepts = route.credentials;
    const bearerRoute = accepts.includes('api_key') || accepts.includes('bearer_jwt');
    const authorization = headers.authorization;
    let session: ResolvedSession | null = null;
    if (rule.auth !== 'none') {
      const bearer = bearerRoute ? readBearer(authorization) : null;
      let lookup: Lookup;
      if (bearer && bearer.kind !== 'none') {
        // one caller, one identity: a browser's cookie riding along with a key is refused
        if (cookie.token !== null || cookie.duplicate) throw new AmbiguousCredentials();
        lookup = await resolveBearer(bearer, route, client, log);
      } else {
        lookup = !accepts.includes('cookie')
          ? { outcome: 'no_cookie', source: 'none' }
          : cookie.duplicate
            ? { outcome: 'malformed', source: 'none', reason: 'duplicate session cookie' }
            : await resolve(cookie.token);
        metrics?.lookup(lookup.outcome, lookup.source);
      }
      if (lookup.outcome === 'valid') identified?.(lookup.session);
      if (lookup.outcome === 'store_error') {
        // the outage itself is logged once by the session plugin: here only at debug
        log.debug({ err: lookup.error, route: route.name }, 'session store unavailable: 503');
        throw new SessionStoreUnavailable();
      }
      if (lookup.outcome === 'invalid' && lookup.reason && lookup.source !== 'none') {
        log.warn({ route: route.name, reason: lookup.reason }, 'unusable session record');
      }
      const decision = decide(rule, lookupRoles(lookup));
      metrics?.decision(route.name, decision);
      if (decision === 'unauthenticated') throw new Unauthenticated();
      if (decision === 'forbidden') throw new Forbidden();
      if (lookup.outcome === 'valid') session = lookup.session;
      if (route.csrf && (upgrade || UNSAFE_METHODS.has(method)) && (cookie.token !== null || cookie.duplicate)) {
        const origins = configuredOrigins.length ? configuredOrigins : allowedOriginsFor(client);
        const why = csrfVerdict(headers, origins);
        if (why) throw new CsrfRejected(why);
      }
    }
    // login and logout with or without a cookie: another site must not sign a browser in
    // to an account of its choosing (or out)
    if (route.csrf && route.name === authRoute && UNSAFE_METHODS.has(method)) {
      const origins = configuredOrigins.length ? configuredOrigins : allowedOriginsFor(client);
      const why = authWriteVerdict(headers, origins);
      if (why) throw new CsrfRejected(why);
    }
    // forward auth: the proxy's question carries no body; the proxy applies its own limits
    const declared = forwardAuth ? undefined : headers['content-length'];
    if (declared !== undefined && Number(declared) > route.bodyLimit) throw new PayloadTooLarge(String(route.bodyLimit));
    const dropAuthorization = authorization !== undefined && ((bearerRoute && rule.auth !== 'none') || carriesApiKey(authorization));
    return { route, rule, path, query, session, cookie: cookie.rest, client, dropAuthorization };
  }

  return {
    get routes() {
      return routes;
    },
    setRoutes(next: RouteSet) {
      // one assignment: a request sees either the old table or the new one, never a mix
      const nextTable = new RouteTable(next.routes);
      routes = next;
      table = nextTable;
    },
    admit,
    check,
  };
}
