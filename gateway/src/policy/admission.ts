import type { IncomingMessage } from 'node:http';
import type { FastifyBaseLogger } from 'fastify';
import {
  BadRequest,
  CsrfRejected,
  Forbidden,
  HeadersTooLarge,
  MethodNotAllowed,
  MethodOverrideRefused,
  NotFound,
  PayloadTooLarge,
  SessionStoreUnavailable,
  Unauthenticated,
} from '../errors.js';
import { readSessionCookie } from '@sessiongate/session';
import { canonicalize } from '../routes/canonical-path.js';
import { RouteTable, ruleFor } from '../routes/match.js';
import type { MethodRule, Route, RouteSet } from '../routes/types.js';
import type { Lookup, LookupOutcome, LookupSource, ResolvedSession } from '../session/resolver.js';
import { ClientAddressResolver, type ClientAddress } from './client-address.js';
import { allowedOriginsFor, authWriteVerdict, csrfVerdict } from './csrf.js';
import { decide, type Decision } from './decide.js';
import { assertCheckableBody, hasMethodOverrideParam } from './method-override.js';

/** What the gate decided for one request, for the proxy step. */
export interface GateState {
  readonly route: Route;
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
}

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
}

const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const INVALID_HOST = 'The Host header (or a trusted proxy\'s X-Forwarded-Host or Forwarded host) is not a valid host[:port]';

function lookupRoles(l: Lookup): readonly string[] | null {
  return l.outcome === 'valid' ? l.session.record.roles : null;
}

export function createAdmission(opts: AdmissionOptions): Admission {
  const { resolve, metrics, cookieName, authRoute, maxCookieBytes } = opts;
  const clientAddress = new ClientAddressResolver(opts.trustedProxies);
  const configuredOrigins = opts.allowedOrigins;
  let routes = opts.routes;
  let table = new RouteTable(routes.routes);

  async function admit(
    raw: IncomingMessage,
    log: FastifyBaseLogger,
    matched?: (route: Route) => void,
    upgrade = false,
    identified?: (session: ResolvedSession) => void,
  ): Promise<GateState> {
    const method = raw.method ?? 'GET';
    const c = canonicalize(raw.url ?? '');
    if (!c.ok) throw new BadRequest(c.reason);
    const client = clientAddress.resolve(raw);
    // RFC 9112 §3.2: an invalid Host is a 400; it would travel on as X-Forwarded-Host
    if (client.host === null) throw new BadRequest(INVALID_HOST);
    const route = table.match(c.path);
    if (!route) throw new NotFound();
    matched?.(route);
    const rule = ruleFor(route, method);
    if (!rule) throw new MethodNotAllowed(method);
    if (route.methodOverride === 'refuse') {
      if (hasMethodOverrideParam(c.query.slice(1))) throw new MethodOverrideRefused('query');
      assertCheckableBody(method, raw.headers);
    }
    const cookieHeader = raw.headers.cookie;
    if (cookieHeader !== undefined && cookieHeader.length > maxCookieBytes) {
      throw new HeadersTooLarge(`The Cookie header exceeds ${maxCookieBytes} bytes`);
    }
    const cookie = readSessionCookie(cookieHeader, cookieName);
    let session: ResolvedSession | null = null;
    if (rule.auth !== 'none') {
      const lookup: Lookup = cookie.duplicate
        ? { outcome: 'malformed', source: 'none', reason: 'duplicate session cookie' }
        : await resolve(cookie.token);
      metrics?.lookup(lookup.outcome, lookup.source);
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
        const why = csrfVerdict(raw.headers, origins);
        if (why) throw new CsrfRejected(why);
      }
    }
    // login and logout with or without a cookie: another site must not sign a browser in
    // to an account of its choosing (or out)
    if (route.csrf && route.name === authRoute && UNSAFE_METHODS.has(method)) {
      const origins = configuredOrigins.length ? configuredOrigins : allowedOriginsFor(client);
      const why = authWriteVerdict(raw.headers, origins);
      if (why) throw new CsrfRejected(why);
    }
    const declared = raw.headers['content-length'];
    if (declared !== undefined && Number(declared) > route.bodyLimit) throw new PayloadTooLarge(String(route.bodyLimit));
    return { route, rule, path: c.path, query: c.query, session, cookie: cookie.rest, client };
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
  };
}
