import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import replyFrom from '@fastify/reply-from';
import type { FastifyBaseLogger, FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
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
  UpstreamTimeout,
  UpstreamUnavailable,
  errorResponse,
} from './errors.js';
import { errorPage, errorPageContext } from './pages/error-page.js';
import { pageHeaders, prefersHtml, type Brand } from '@sessiongate/service-kit';
import { XSessionSigner } from './identity/signer.js';
import { ClientAssertionSigner, withClientAssertion } from './identity/client-assertion.js';
import jwks from './identity/jwks.js';
import type { GatewayMetrics, UpstreamErrorKind } from './ops/metrics.js';
import { decide } from './policy/decide.js';
import { clientResponseHeaders, stripRequestHopByHop, upstreamRequestHeaders } from './proxy/headers.js';
import { allowedOriginsFor, authWriteVerdict, csrfVerdict } from './proxy/csrf.js';
import { ClientAddressResolver, type ClientAddress } from './proxy/client-address.js';
import { assertCheckableBody, hasMethodOverrideParam, isFormBody, multipartBoundary } from './proxy/method-override.js';
import { MultipartMethodScan } from './proxy/multipart-scan.js';
import { UpgradeProxy } from './proxy/upgrade.js';
import { canonicalize } from './routes/canonical-path.js';
import { RouteTable, ruleFor, upstreamUrl } from './routes/match.js';
import { DEFAULT_BODY_LIMIT } from './routes/config.js';
import type { MethodRule, Route, RouteSet } from './routes/types.js';
import { DEFAULT_AUTH_ROUTE, DEFAULT_COOKIE_NAME, readSessionCookie, type KeySet } from '@sessiongate/session';
import type { Lookup, ResolvedSession, SessionResolver } from './session/resolver.js';
import { resolveTraced } from './ops/tracing.js';

/** Largest Cookie header accepted (browsers send at most ~4 KiB per cookie). @default 8192 */
export const DEFAULT_MAX_COOKIE_BYTES = 8192;

export interface SessionGateOptions {
  /** The routes in force; swap them later with `fastify.sessiongate.setRoutes()`. */
  routes: RouteSet;
  /** Resolves cookies to sessions; its owner (the session plugin) closes it. */
  resolver: SessionResolver;
  /** Keys that sign X-Session (the first signs, all are published). */
  keys: KeySet;
  /** @default 'sid' */
  cookieName?: string;
  /** @default DEFAULT_AUTH_ROUTE */
  authRoute?: string;
  /** X-Session `iss` and lifetime. */
  xSession?: { issuer?: string; ttlMs?: number };
  /** Origins allowed to send cookie-authenticated writes; empty: the gateway's own origin. */
  allowedOrigins?: readonly string[];
  /** CIDRs whose X-Forwarded-* / Forwarded headers are believed. */
  trustedProxies?: readonly string[];
  metrics?: GatewayMetrics;
  /** Linked from the HTML 401 and 403 pages browsers see; null for none. @default '/auth/login' */
  loginPath?: string | null;
  /** Where the 403 page's "Sign out" posts; null for none. @default '/auth/logout' (none without loginPath) */
  logoutPath?: string | null;
  /** The product's name and logo on the error pages browsers see. */
  brand?: Brand | null;
  /** Largest Cookie header accepted; more is 431. @default DEFAULT_MAX_COOKIE_BYTES */
  maxCookieBytes?: number;
  /** Upstream connection pool settings (undici Agent options). */
  upstreamPool?: { connections?: number; keepAliveTimeoutMs?: number };
  /** How long a WebSocket (or other upgraded connection) may stay silent both ways. @default DEFAULT_WEBSOCKET_IDLE_TIMEOUT_MS */
  websocketIdleTimeoutMs?: number;
}

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

export interface SessionGate {
  /** Routes in force. */
  readonly routes: RouteSet;
  /** Swaps the routes atomically; requests already past routing finish on the old ones. */
  setRoutes(routes: RouteSet): void;
  readonly resolver: SessionResolver;
}

declare module 'fastify' {
  interface FastifyInstance {
    sessiongate: SessionGate;
  }
  interface FastifyRequest {
    gate: GateState | null;
    /** The matched route's name, set as soon as it is known (also on refused requests). */
    gateRoute: string | null;
    /** The valid session, set as soon as it is known (also on refused requests: a 403 page names its user). */
    gateSession: ResolvedSession | null;
  }
}

const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const LOGGED_ELSEWHERE = new Set(['SG_ERR_SESSION_STORE_UNAVAILABLE', 'SG_ERR_UPSTREAM_UNAVAILABLE', 'SG_ERR_UPSTREAM_TIMEOUT']);
const ALL_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
const INVALID_HOST = 'The Host header (or a trusted proxy\'s X-Forwarded-Host or Forwarded host) is not a valid host[:port]';

function lookupRoles(l: Lookup): readonly string[] | null {
  return l.outcome === 'valid' ? l.session.record.roles : null;
}

function upstreamErrorKind(code: string | undefined): UpstreamErrorKind {
  switch (code) {
    case 'FST_REPLY_FROM_GATEWAY_TIMEOUT':
    case 'FST_REPLY_FROM_TIMEOUT':
    case 'FST_REPLY_FROM_HTTP_REQUEST_TIMEOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return 'timeout';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'reset';
    case 'FST_REPLY_FROM_SERVICE_UNAVAILABLE':
    case 'FST_REPLY_FROM_INTERNAL_SERVER_ERROR':
    case 'FST_REPLY_FROM_BAD_GATEWAY':
      return 'unavailable';
    default:
      return 'other';
  }
}

/** Counts body bytes and fails the stream past the route's limit (chunked bodies). */
class BodyLimit extends Transform {
  private seen = 0;
  constructor(private readonly limit: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.limit) cb(new PayloadTooLarge(String(this.limit)));
    else cb(null, chunk);
  }
}

// errors a request body stream fails with, to be answered as they are
const BODY_ERRORS = new Set(['SG_ERR_PAYLOAD_TOO_LARGE', 'SG_ERR_METHOD_OVERRIDE_REFUSED', 'SG_ERR_FORM_BODY_UNREADABLE']);

function hasBody(headers: IncomingHttpHeaders): boolean {
  const length = headers['content-length'];
  return headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** The whole of a (size-limited) stream. */
async function readWhole(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/**
 * The gateway as a Fastify plugin: canonical path → route → session → policy → signed
 * X-Session → upstream. Everything it adds (a catch-all route, body pass-through, the JWKS
 * endpoint) lives in an encapsulated context, so a host application's own routes and
 * parsers are untouched.
 */
const sessiongate: FastifyPluginAsync<SessionGateOptions> = async (fastify, opts) => {
  const cookieName = opts.cookieName ?? DEFAULT_COOKIE_NAME;
  const authRoute = opts.authRoute ?? DEFAULT_AUTH_ROUTE;
  const resolver = opts.resolver;
  const metrics = opts.metrics;
  const signer = new XSessionSigner(opts.keys, opts.xSession);
  const assertions = new ClientAssertionSigner(opts.keys, opts.xSession?.issuer ? { issuer: opts.xSession.issuer } : {});
  const clientAddress = new ClientAddressResolver(opts.trustedProxies ?? []);
  const configuredOrigins = opts.allowedOrigins ?? [];
  const maxCookieBytes = opts.maxCookieBytes ?? DEFAULT_MAX_COOKIE_BYTES;
  // where a browser that hit a 401 can sign in: the auth route's login page, when there is one
  const loginPath = opts.loginPath === undefined ? '/auth/login' : opts.loginPath;
  const logoutPath = opts.logoutPath === undefined ? (loginPath === null ? null : '/auth/logout') : opts.logoutPath;
  const brand = opts.brand ?? null;
  const htmlHeaders = pageHeaders(brand);

  let routes = opts.routes;
  let table = new RouteTable(routes.routes);

  const gate: SessionGate = {
    get routes() {
      return routes;
    },
    setRoutes(next: RouteSet) {
      // one assignment: a request sees either the old table or the new one, never a mix
      const nextTable = new RouteTable(next.routes);
      routes = next;
      table = nextTable;
    },
    resolver,
  };
  fastify.decorate('sessiongate', gate);
  fastify.decorateRequest('gate', null);
  fastify.decorateRequest('gateRoute', null);
  fastify.decorateRequest('gateSession', null);

  function identityFor(session: ResolvedSession, route: Route, now: number): string {
    const cached = session.identities?.get(route.name);
    if (cached && cached.reuseUntil > now) {
      metrics?.xSession(true);
      return cached.token;
    }
    const r = session.record;
    const { token, expiresAtMs } = signer.sign(route.name, { sub: r.sub, roles: r.roles, sid: r.sid, extra: r.claims }, now);
    session.identities?.set(route.name, { token, reuseUntil: now + (expiresAtMs - now) / 2 });
    metrics?.xSession(false);
    return token;
  }

  /**
   * Routing, session and policy for one request: the canonical path, its route and rule,
   * the session, the decision. Throws the coded error to answer with. Shared by HTTP
   * requests and WebSocket upgrades (`upgrade`: a browser opens a WebSocket to any site with
   * the user's cookies, so an upgrade gets the same origin check as a write).
   */
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
        : await resolveTraced(resolver, cookie.token);
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

  // runs before the body is read, so a refusal costs nothing
  async function admitRequest(request: FastifyRequest): Promise<void> {
    request.gate = await admit(
      request.raw,
      request.log,
      (route) => {
        request.gateRoute = route.name;
      },
      false,
      (session) => {
        request.gateSession = session;
      },
    );
  }

  /** Everything the upstream needs to know about this request. */
  function forwardContext(g: GateState, _raw: IncomingMessage) {
    const xSession = g.session ? identityFor(g.session, g.route, Date.now()) : null;
    const addr = g.client;
    return {
      // without the query: reply-from appends the client's query exactly as received
      url: upstreamUrl(g.route, g.path),
      query: g.query,
      headers: {
        cookie: g.cookie,
        xSession,
        forwardedFor: addr.forwardedFor,
        forwardedProto: addr.proto,
        forwardedHost: addr.host ?? undefined,
      },
    };
  }

  async function forward(request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const g = request.gate;
    if (!g) throw new NotFound();
    const route = g.route;
    const fwd = forwardContext(g, request.raw);
    // the auth service throttles logins per client: it gets the address signed, so it need
    // not trust whatever hop the gateway's request reaches it through
    const assertion = route.name === authRoute && g.client.ip ? assertions.sign(route.name, g.client.ip) : null;
    return reply.from(fwd.url, {
      timeout: route.timeout,
      rewriteRequestHeaders: (_req, headers) => withClientAssertion(upstreamRequestHeaders(stripRequestHopByHop(headers), fwd.headers), assertion),
      rewriteHeaders: (headers) => clientResponseHeaders(headers, route.name === authRoute, cookieName),
      onError: (rep, { error }) => {
        const err = error as Error & { code?: string };
        // the body stream failed the upstream request on purpose: answer with its reason
        const bodyErr = [err, err.cause as (Error & { code?: string }) | undefined].find((e) => e?.code !== undefined && BODY_ERRORS.has(e.code));
        if (bodyErr) {
          void rep.send(bodyErr);
          return;
        }
        const kind = upstreamErrorKind(err.code);
        metrics?.upstreamErrors.inc({ route: route.name, kind });
        rep.request.log.warn({ route: route.name, kind, code: err.code }, 'upstream request failed');
        void rep.send(kind === 'timeout' ? new UpstreamTimeout() : new UpstreamUnavailable());
      },
    });
  }

  await fastify.register(jwks, { getKeys: () => opts.keys });

  // WebSocket (and any other) upgrades pass the same gate as plain requests
  const upgrades = new UpgradeProxy({
    admit: (raw) => admit(raw, fastify.log, undefined, true),
    forward: forwardContext,
    onRevoked: (ref, cb) => resolver.onRevoked(ref, cb),
    idleTimeoutMs: opts.websocketIdleTimeoutMs,
    log: fastify.log,
    onRejected: (err) => errorResponse(err),
  });
  fastify.addHook('onListen', async () => {
    fastify.server.on('upgrade', upgrades.handle);
  });
  fastify.addHook('preClose', async () => {
    fastify.server.off('upgrade', upgrades.handle);
    upgrades.closeAll();
  });

  await fastify.register(async function proxyContext(instance: FastifyInstance) {
    await instance.register(replyFrom, {
      disableRequestLogging: true,
      undici: {
        connections: opts.upstreamPool?.connections ?? 128,
        pipelining: 1,
        keepAliveTimeout: opts.upstreamPool?.keepAliveTimeoutMs ?? 4_000,
      },
    });
    // bodies stream through untouched; the route's limit is enforced on the way
    instance.removeAllContentTypeParsers();
    function bodyOf(request: FastifyRequest, payload: IncomingMessage, done: (err: Error | null, body?: Readable) => void): void {
      const limit = request.gate?.route.bodyLimit ?? DEFAULT_BODY_LIMIT;
      const counted = payload.pipe(new BodyLimit(limit));
      payload.on('error', (err) => counted.destroy(err));
      if (request.gate?.route.methodOverride === 'allow') return done(null, counted);
      let boundary: string | null;
      try {
        boundary = multipartBoundary(request.headers);
      } catch (err) {
        return done(err as Error);
      }
      if (boundary !== null) {
        const scanned = counted.pipe(new MultipartMethodScan(boundary));
        counted.on('error', (err) => scanned.destroy(err));
        return done(null, scanned);
      }
      if (!isFormBody(request.method, request.headers)) return done(null, counted);
      // a form body is read whole (up to the route's limit) and scanned before anything is
      // sent, so an upstream never sees a _method it would obey
      readWhole(counted).then((body) => {
        if (hasMethodOverrideParam(body.toString('latin1'))) done(new MethodOverrideRefused('request body'));
        else done(null, Readable.from([body]));
      }, (err: Error) => done(err));
    }
    instance.addContentTypeParser('*', bodyOf);
    instance.setErrorHandler((err: Error & { code?: string; statusCode?: number }, request, reply) => {
      const { statusCode, body } = errorResponse(err);
      // store and upstream failures were logged where they happened, with their cause
      if (statusCode >= 500 && !LOGGED_ELSEWHERE.has(err.code ?? '')) request.log.error({ err }, 'request failed');
      // the rest of an oversized body may still be on the wire, unread: the connection
      // cannot carry another request, so say so and close it
      if (statusCode === 413 || (BODY_ERRORS.has(err.code ?? '') && !request.raw.complete)) reply.header('connection', 'close');
      if (prefersHtml(request.headers.accept)) {
        const user = request.gateSession?.record ?? null;
        const page = errorPage(statusCode, body, errorPageContext(request.raw, { loginPath, logoutPath, brand, user }));
        return reply.code(statusCode).headers(htmlHeaders).send(page);
      }
      return reply.code(statusCode).type('application/json; charset=utf-8').send(body);
    });
    instance.route({ method: ALL_METHODS, url: '/*', onRequest: admitRequest, handler: forward });
    // other methods (TRACE, WebDAV…) and targets no route pattern fits (absolute-form, '*')
    // get the same gate, which answers them with 405 or 400
    instance.setNotFoundHandler(async (request, reply) => {
      await admitRequest(request);
      // Fastify reads no body for methods it does not know (PROPFIND, PURGE…): a route that
      // lists one gets its body forwarded like any other
      if (request.body === undefined && hasBody(request.headers)) {
        request.body = await new Promise<Readable | undefined>((resolve, reject) => bodyOf(request, request.raw, (err, body) => (err ? reject(err) : resolve(body))));
      }
      return forward(request, reply);
    });
    instance.route({ method: ALL_METHODS, url: '/', onRequest: admitRequest, handler: forward });
  });
};

export default fp(sessiongate, { name: 'sessiongate', fastify: '5.x' });
export { sessiongate };
